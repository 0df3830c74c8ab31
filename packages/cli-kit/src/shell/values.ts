/** Flag value parsers: text in, a typed value out, or a `UsageError` naming the flag. */
import { UsageError } from '../errors.ts'

const WHOLE = /^\d+$/

/** A whole number (0, 1, 2, …) that is a safe integer. */
export function wholeNumber(text: string, flag: string): number {
  if (!WHOLE.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`--${flag} must be a whole number`, { details: { value: text } })
  }
  return Number(text)
}

/** A whole number above 0 that is a safe integer. */
export function positiveInteger(text: string, flag: string): number {
  if (!WHOLE.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) <= 0) {
    throw new UsageError(`--${flag} must be a positive integer`, { details: { value: text } })
  }
  return Number(text)
}

/** A 0x-prefixed 20-byte hex address (any letter case). */
export function address(text: string, flag: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(text)) {
    throw new UsageError(`--${flag} must be a 0x-prefixed 20-byte hex address`, {
      details: { value: text.slice(0, 100) },
    })
  }
  return text
}

/** A PCR list, `0-7,15` or `0,1,2,7` (PCRs 0–23): sorted, each once. */
export function pcrList(text: string, flag: string): number[] {
  const out = new Set<number>()
  for (const part of text.split(',')) {
    const m = /^\s*(\d{1,2})(?:-(\d{1,2}))?\s*$/.exec(part)
    const from = Number(m?.[1])
    const to = Number(m?.[2] ?? m?.[1])
    if (!m || from > to || to > 23) {
      throw new UsageError(`--${flag} must list PCRs 0–23, e.g. 0-7,15`, {
        details: { value: text.slice(0, 100) },
      })
    }
    for (let p = from; p <= to; p++) out.add(p)
  }
  return [...out].sort((a, b) => a - b)
}

/** The check of a flag's `choices`. */
export function choice(text: string, flag: string, choices: readonly string[]): string {
  if (choices.includes(text)) return text
  const list = `${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}`
  throw new UsageError(`--${flag} must be ${list}`, { details: { value: text.slice(0, 100) } })
}

const ETHER = /^(\d*)(?:\.(\d{1,18}))?$/

/** An amount of ether above 0 (`0.01`, `1`, `.5`; at most 18 decimals), as wei. */
export function positiveEther(text: string, flag: string): bigint {
  const m = ETHER.exec(text)
  const wei =
    m && `${m[1]}${m[2] ?? ''}` !== ''
      ? BigInt(m[1] || '0') * 10n ** 18n + BigInt((m[2] ?? '').padEnd(18, '0'))
      : 0n
  if (wei <= 0n) {
    throw new UsageError(`--${flag} must be a positive amount of ether`, {
      details: { value: text.slice(0, 100) },
    })
  }
  return wei
}
