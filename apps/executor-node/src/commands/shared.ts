/**
 * What several executor-node commands share: the global flags, the `command` declarer and
 * the printers of a run. Only light modules load here (helia, libp2p, ethers and the
 * sandboxes load inside the handlers), so `--help` and `--version` start fast.
 */
import { type CommandContext, commandsWith, type Io } from '@digicap/cli-kit'
import type { FetchProgress, RunStage, StageEvent } from '@digicap/executor'
import { resolveDataDir } from '../config.ts'

export const GLOBAL_FLAGS = {
  'data-dir': {
    type: 'string',
    value: '<dir>',
    help: 'data folder (env DIGICAP_DATA_DIR; default ~/.digicap/executor-node)',
  },
  listen: {
    type: 'string',
    multiple: true,
    value: '<maddr>',
    help: 'override the listen addresses',
  },
} as const

/** Declares an executor-node command (its handler also sees the global flags). */
export const command = commandsWith(GLOBAL_FLAGS)

type Ctx = CommandContext<{ 'data-dir': string | undefined; listen: string[] | undefined }, unknown>

/** The data folder: --data-dir, then DIGICAP_DATA_DIR, then ~/.digicap/executor-node. */
export const dataDirOf = (ctx: Ctx): string => resolveDataDir(ctx.flags['data-dir'], ctx.env)

/** `{ listen }` when --listen was given, for `createExecutorNode`. */
export const listenOf = (ctx: Ctx): { listen?: string[] } =>
  ctx.flags.listen ? { listen: ctx.flags.listen } : {}

const hex = (bytes: Uint8Array): string => `0x${Buffer.from(bytes).toString('hex')}`

/** A result as text when it is text, else as 0x hex. */
export function printable(bytes: Uint8Array): string {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: detecting binary output
  return /[\u0000-\u0008\u000e-\u001f]/.test(text) ? hex(bytes) : text
}

const STAGE_LABEL: Record<RunStage, string> = {
  fetch: 'fetch',
  verify: 'verify',
  grant: 'grant',
  release: 'release',
  open: 'open',
  run: 'run',
  deliver: 'deliver',
  cleanup: 'clean-up',
}

/** One line per stage on stderr: `… stage` when it starts, `✓ stage  ms  facts` when done. */
export function stagePrinter(io: Io): (e: StageEvent) => void {
  return (e) => {
    if (e.status === 'start') {
      const extra = e.detail?.fallback
        ? ` (fast path failed: ${String(e.detail.fallback)}; chain path)`
        : ''
      io.stderr.write(`  … ${STAGE_LABEL[e.stage]}${extra}\n`)
      return
    }
    const d = e.detail ?? {}
    const facts: string[] = []
    if (typeof d.bytes === 'number') facts.push(`${d.bytes} bytes`)
    if (typeof d.path === 'string') facts.push(`${d.path} path`)
    if (typeof d.owner === 'string') facts.push(`owner ${d.owner}`)
    if (typeof d.filesRemoved === 'number') {
      facts.push(
        `${d.filesRemoved} files, ${d.dirsRemoved} dirs, ${d.buffersZeroed} buffers zeroed`,
      )
    }
    if (Array.isArray(d.deliveries)) facts.push(`${d.deliveries.length} receiver(s)`)
    io.stderr.write(
      `  ✓ ${STAGE_LABEL[e.stage].padEnd(8)} ${(e.ms ?? 0).toFixed(0).padStart(6)} ms  ${facts.join(', ')}\n`,
    )
  }
}

/**
 * While the capsule is fetched, a line every `everyMs` with what the fetch has done (time
 * waited, peers asked, bytes received), so a fetch nobody answers is visibly alive.
 */
export function fetchProgressPrinter(io: Io, everyMs = 2000) {
  let latest: FetchProgress = { bytes: 0, peersAsked: 0, blocksReceived: 0 }
  let started = 0
  let timer: ReturnType<typeof setInterval> | undefined
  const stop = () => {
    clearInterval(timer)
    timer = undefined
  }
  return {
    onProgress(p: FetchProgress) {
      latest = p
    },
    onStage(e: StageEvent) {
      if (e.stage !== 'fetch') return
      if (e.status === 'start') {
        started = Date.now()
        timer = setInterval(() => {
          const s = ((Date.now() - started) / 1000).toFixed(0)
          io.stderr.write(
            `    fetch: ${s} s, asked ${latest.peersAsked} peer(s), ${latest.bytes} bytes received\n`,
          )
        }, everyMs)
        timer.unref()
      } else stop()
    },
    stop,
  }
}
