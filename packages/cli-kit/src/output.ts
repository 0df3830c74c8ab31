/** Output: one JSON document on stdout under `--json`, human text otherwise; progress on stderr. */
import { DigicapError } from '@digicap/capsule-core/light'

export interface Io {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream & { isTTY?: boolean }
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

/**
 * A progress reporter on stderr: a redrawn bar on a terminal, a line every 2 s otherwise.
 * Phases are shown as they change; small totals (under 1 MiB) are not shown.
 */
export function progressReporter(io: Io): {
  update: (phase: string, done: number, total: number) => void
  finish: () => void
} {
  const tty = io.stderr.isTTY === true
  let phase = ''
  let start = Date.now()
  let last = 0
  let drawn = false
  const draw = (done: number, total: number, force: boolean) => {
    const now = Date.now()
    if (!force && now - last < (tty ? 100 : 2000)) return
    last = now
    const pct = total > 0 ? Math.min(100, (done / total) * 100) : 100
    const rate = done / Math.max(0.001, (now - start) / 1000)
    const width = 30
    const fill = Math.round((pct / 100) * width)
    const text = `${phase.padEnd(5)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct.toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)} ${formatBytes(rate)}/s`
    io.stderr.write(tty ? `\r${text}` : `${text}\n`)
    drawn = true
  }
  return {
    update(p, done, total) {
      if (total < 1024 * 1024) return
      if (p !== phase) {
        if (drawn && tty) io.stderr.write('\n')
        phase = p
        start = Date.now()
        last = 0
      }
      draw(done, total, done >= total)
    },
    finish() {
      if (drawn && tty) io.stderr.write('\n')
      drawn = false
    },
  }
}

/** Exit codes: 0 ok, 1 failure, 2 bad command line. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const

/** Prints an error as `error[CODE]: message` + hint on stderr (and a JSON document under --json). */
export function printError(io: Io, err: unknown, json: boolean): number {
  const e = err instanceof DigicapError ? err : undefined
  const code = e?.code ?? 'INTERNAL'
  const message = e?.shortMessage ?? (err as Error)?.message ?? String(err)
  io.stderr.write(`error[${code}]: ${message}\n`)
  if (e && Object.keys(e.details).length > 0) {
    const details = Object.entries(e.details)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(', ')
    io.stderr.write(`  details: ${details}\n`)
  }
  if (e?.hint) io.stderr.write(`  hint: ${e.hint}\n`)
  if (!e)
    io.stderr.write(
      '  hint: this is a bug or an unexpected system error; run again with DEBUG=1 for the stack.\n',
    )
  if (process.env.DEBUG && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`)
  if (json) {
    io.stdout.write(
      `${JSON.stringify({ ok: false, error: { code, message, hint: e?.hint, details: e?.details } }, jsonReplacer)}\n`,
    )
  }
  return code === 'USAGE' ? EXIT.usage : EXIT.failure
}

export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Uint8Array) return `0x${Buffer.from(value).toString('hex')}`
  return value
}
