/**
 * A run's progress as text lines, for a terminal or a log: one line per stage, and while
 * the capsule is fetched a line every few seconds, so a fetch nobody answers is visibly alive.
 */

import type { RunStage, StageEvent } from '../executor.ts'
import type { FetchProgress } from '../load/loader.ts'

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

/** What a finished stage reports, in words (`18 bytes`, `fast path`, `2 receiver(s)`). */
function facts(d: Record<string, unknown>): string[] {
  const out: string[] = []
  if (typeof d.bytes === 'number') out.push(`${d.bytes} bytes`)
  if (typeof d.path === 'string') out.push(`${d.path} path`)
  if (typeof d.owner === 'string') out.push(`owner ${d.owner}`)
  if (typeof d.filesRemoved === 'number') {
    out.push(`${d.filesRemoved} files, ${d.dirsRemoved} dirs, ${d.buffersZeroed} buffers zeroed`)
  }
  if (Array.isArray(d.deliveries)) out.push(`${d.deliveries.length} receiver(s)`)
  return out
}

/** `  … stage` when a stage starts, `  ✓ stage    12 ms  facts` when it ends. */
export function stageLine(e: StageEvent): string {
  if (e.status === 'start') {
    const fallback = e.detail?.fallback
      ? ` (fast path failed: ${String(e.detail.fallback)}; chain path)`
      : ''
    return `  … ${STAGE_LABEL[e.stage]}${fallback}\n`
  }
  const ms = (e.ms ?? 0).toFixed(0).padStart(6)
  return `  ✓ ${STAGE_LABEL[e.stage].padEnd(8)} ${ms} ms  ${facts(e.detail ?? {}).join(', ')}\n`
}

/**
 * Progress lines for `runCapsule`'s `onStage` and `onFetchProgress`: each stage's line, and
 * every `everyMs` of the fetch what it has done (time waited, peers asked, bytes received).
 * Call `stop()` when the run ends, however it ends.
 *
 * @example
 * ```ts
 * const progress = progressLines((line) => process.stderr.write(line))
 * try { await executor.runCapsule(cid, { onStage: progress.onStage, onFetchProgress: progress.onFetchProgress }) }
 * finally { progress.stop() }
 * ```
 */
export function progressLines(write: (line: string) => void, everyMs = 2000) {
  let latest: FetchProgress = { bytes: 0, peersAsked: 0, blocksReceived: 0 }
  let started = 0
  let timer: ReturnType<typeof setInterval> | undefined
  const stop = () => {
    clearInterval(timer)
    timer = undefined
  }
  return {
    onFetchProgress(p: FetchProgress) {
      latest = p
    },
    onStage(e: StageEvent) {
      if (e.stage === 'fetch' && e.status === 'start') {
        started = Date.now()
        timer = setInterval(() => {
          const s = ((Date.now() - started) / 1000).toFixed(0)
          write(
            `    fetch: ${s} s, asked ${latest.peersAsked} peer(s), ${latest.bytes} bytes received\n`,
          )
        }, everyMs)
        timer.unref()
      } else if (e.stage === 'fetch') stop()
      write(stageLine(e))
    },
    stop,
  }
}
