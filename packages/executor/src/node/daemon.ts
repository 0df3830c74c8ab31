/**
 * What an executor node's daemons do besides answering key releases: follow the capsule
 * announcements (and, opted in, run each announced capsule once, bounded by `autoRunner`), and
 * receive results; each event as a JSON document and a line of text, for a log or a terminal.
 */
import type { DigicapError } from '@digicap/capsule-core'
import { type CapsuleAnnouncement, subscribeCapsuleAnnouncements } from '@digicap/p2p/light'
import type { ReceivedResult } from '@digicap/protocol'
import { type AutoRunEvent, autoRunner } from '../auto-run.ts'
import type { RunCapsuleOptions } from '../executor.ts'
import { printable } from './printable.ts'
import type { ExecutorNode } from './types.ts'

export { printable }

/** One event of a daemon: a JSON document (`--json`) and the same as a line of text. */
export interface DaemonLine {
  readonly doc: Record<string, unknown>
  readonly text: string
}

export interface FollowAnnouncementsInit {
  /** Only announcements of this chain and CapsuleRegistry run. */
  readonly chainId: number
  readonly registry: string
  /** Run each announced capsule once (the policy decides; a refusal is an event, not fatal). */
  readonly autoRun?: boolean | undefined
  readonly runOptions?: RunCapsuleOptions | undefined
  /** Every announcement, and what the auto-runner did (duplicates left out). */
  readonly onLine: (line: DaemonLine) => void
}

/**
 * @returns a function that unsubscribes and waits for a running auto-run.
 * @example
 * ```ts
 * const stop = followAnnouncements(en, { chainId, registry, autoRun: true, onLine: (l) => log(l.text) })
 * ```
 */
export function followAnnouncements(
  en: Pick<ExecutorNode, 'node' | 'executor' | 'chain'>,
  init: FollowAnnouncementsInit,
): () => Promise<void> {
  // Bounded: a capped queue, an LRU of seen CIDs, a per-announcer rate limit, one run at a time.
  const auto = init.autoRun
    ? autoRunner({
        chainId: init.chainId,
        registry: init.registry,
        runOptions: init.runOptions,
        onEvent: (e) => {
          const line = autoRunLine(e)
          if (line) init.onLine(line)
        },
      })({ node: en.node, executor: en.executor, chain: en.chain })
    : undefined
  const unsubscribe = subscribeCapsuleAnnouncements(en.node, (ann: CapsuleAnnouncement, from) => {
    init.onLine({
      doc: { event: 'announcement', cid: ann.cid, capsuleId: ann.capsuleId },
      text: `announced ${ann.cid} (capsule ${String(ann.capsuleId)})\n`,
    })
    auto?.offer(ann, from)
  })
  return async () => {
    unsubscribe()
    await auto?.stop()
  }
}

/** What the auto-runner did: ignored (except duplicates), ran, refused; undefined for the rest. */
export function autoRunLine(e: AutoRunEvent): DaemonLine | undefined {
  if (e.type === 'ignored' && e.reason !== 'duplicate' && e.reason !== 'stopped') {
    return {
      doc: { event: 'ignored', cid: e.cid, reason: e.reason },
      text: `ignored ${e.cid}: ${e.reason}\n`,
    }
  }
  if (e.type === 'ran') {
    const { runId, path, deliveries, timings } = e.result
    return {
      doc: { event: 'ran', cid: e.cid, runId, path, deliveries, timings },
      text: `ran ${e.cid} via ${path}: ${deliveries.length} delivery(ies)\n`,
    }
  }
  if (e.type === 'failed') {
    const err = e.error as { code?: string; shortMessage?: string; message?: string }
    const code = err.code ?? 'INTERNAL'
    const message = err.shortMessage ?? err.message
    return {
      doc: { event: 'refused', cid: e.cid, code, message },
      text: `error[${code}]: ${message} (${e.cid})\n`,
    }
  }
  return undefined
}

/** A result the receiver verified (its executor checked on chain). */
export function receivedLine(r: ReceivedResult): DaemonLine {
  const { runId, capsuleId, grantId, executor, from, via } = r
  const result = printable(r.output)
  return {
    doc: { event: 'result', runId, capsuleId, grantId, executor, from, via, result },
    text: `result of run ${runId} from executor ${executor} (verified on chain; peer ${from}, ${via}):\n${result}\n`,
  }
}

/** A result the receiver refused (its `error` event's detail), with the reason. */
export function refusedLine(err: DigicapError): DaemonLine {
  const d = err.details
  const reason = d.reasonCode ?? err.shortMessage
  const { runId, grantId, from, executor } = d
  const signed = executor === undefined ? '' : ` (signed by ${String(executor)})`
  return {
    doc: { event: 'refused', code: err.code, reason, runId, grantId, from, executor },
    text: `refused result of run ${String(runId ?? '?')} from ${String(from ?? '?')}: ${String(reason)}${signed}\n`,
  }
}

/** `serve` is up: its peer id, account and listen addresses. */
export function startedLine(n: {
  peerId: string
  address: string
  addresses: string[]
}): DaemonLine {
  const { peerId, address, addresses } = n
  return {
    doc: { event: 'started', peerId, addresses, address },
    text: `serving as ${peerId} (${address})\n${addresses.map((a) => `  ${a}\n`).join('')}`,
  }
}
