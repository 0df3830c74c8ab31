/** `executor-node serve`: the daemon (key releases, announcements, pending deliveries). */

import { toHex } from '@digicap/capsule-core'
import { switchFlag } from '@digicap/cli-kit'
import type { AutoRunEvent } from '@digicap/executor'
import type { CapsuleAnnouncement } from '@digicap/p2p'
import { command, dataDirOf, listenOf } from './shared.ts'

type Line = (doc: Record<string, unknown>, human: string) => void

/** Prints what the auto-runner did: ignored (except duplicates), ran, refused. */
function autoRunPrinter(line: Line): (e: AutoRunEvent) => void {
  return (e) => {
    if (e.type === 'ignored') {
      if (e.reason === 'duplicate' || e.reason === 'stopped') return
      line({ event: 'ignored', cid: e.cid, reason: e.reason }, `ignored ${e.cid}: ${e.reason}\n`)
    } else if (e.type === 'ran') {
      const { runId, path, deliveries, timings } = e.result
      line(
        { event: 'ran', cid: e.cid, runId, path, deliveries, timings },
        `ran ${e.cid} via ${path}: ${deliveries.length} delivery(ies)\n`,
      )
    } else if (e.type === 'failed') {
      const err = e.error as { code?: string; shortMessage?: string; message?: string }
      const code = err.code ?? 'INTERNAL'
      const message = err.shortMessage ?? err.message
      line(
        { event: 'refused', cid: e.cid, code, message },
        `error[${code}]: ${message} (${e.cid})\n`,
      )
    }
  }
}

export const serve = command({
  name: 'serve',
  summary: 'daemon: key releases, announcements (--auto-run), pending deliveries',
  usage: '[--auto-run] [--fast]',
  description: `Daemon: answers key releases, delivers pending results when receivers connect, and listens
to capsule announcements. With --auto-run it runs each announced capsule of this chain and
registry once (the policy decides; a refusal is printed, not fatal). Without it, announced
capsules are only listed; run one with \`executor-node run <cid>\`. With a TPM in the config
(init --tcti, env DIGICAP_TCTI) it resets PCR 23 and answers /digicap/attest/1.0.0 challenges
with a quote and the attestation record. Stops on SIGINT/SIGTERM.`,
  flags: {
    'auto-run': switchFlag('run each announced capsule once'),
    fast: switchFlag('auto-runs take the keyguard fast path first'),
  },
  async run(ctx) {
    const { flags, event: line } = ctx
    const [{ autoRunner }, { subscribeCapsuleAnnouncements }, { createExecutorNode }] =
      await Promise.all([
        import('@digicap/executor'),
        import('@digicap/p2p'),
        import('../executor-node.ts'),
      ])
    const en = await createExecutorNode(dataDirOf(ctx), ctx.env, listenOf(ctx))
    if (en.attestation) {
      const attestationKeyHash = toHex(en.attestation.hash)
      line({ event: 'attesting', attestationKeyHash }, `attesting with key ${attestationKeyHash}\n`)
    }
    const addresses = en.node.multiaddrs()
    line(
      { event: 'started', peerId: en.peerId, addresses, address: en.address },
      `serving as ${en.peerId} (${en.address})\n${addresses.map((a) => `  ${a}\n`).join('')}`,
    )
    // Bounded: a capped queue, an LRU of seen CIDs, a per-announcer rate limit, one run
    // at a time (see autoRunner in @digicap/executor).
    const auto = flags['auto-run']
      ? autoRunner({
          chainId: en.config.chainId,
          registry: en.config.contracts.capsuleRegistry,
          runOptions: flags.fast ? { fast: true } : {},
          onEvent: autoRunPrinter(line),
        })({ node: en.node, executor: en.executor })
      : undefined
    const unsubscribe = subscribeCapsuleAnnouncements(
      en.node,
      (ann: CapsuleAnnouncement, from: string) => {
        line(
          { event: 'announcement', cid: ann.cid, capsuleId: ann.capsuleId },
          `announced ${ann.cid} (capsule ${String(ann.capsuleId)})\n`,
        )
        auto?.offer(ann, from)
      },
    )
    const reason = await ctx.waitForStop()
    if (typeof unsubscribe === 'function') unsubscribe()
    await auto?.stop()
    await en.stop()
    line({ event: 'stopped', reason }, `stopped (${reason})\n`)
  },
})
