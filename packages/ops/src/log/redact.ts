/**
 * What a log line may hold: secrets are dropped by field name, bytes by type (a byte array in
 * a daemon is a key more often than not), errors keep their name, code and message only.
 */

/** Field names whose values are never written (matched case-insensitively, anywhere in the name). */
export const SECRET_FIELD =
  /mnemonic|words|private|secret|seed|password|passphrase|token|datakey|data_key|^key$|authorization|cookie/i

export const REDACTED = '[redacted]'

/** A copy of `value` safe to write: JSON-able, secrets and bytes replaced. */
export function redact(value: unknown, depth = 0): unknown {
  if (value === null || value === undefined) return value
  if (typeof value === 'bigint') return value.toString()
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return value
  if (typeof value === 'function' || typeof value === 'symbol') return undefined
  if (value instanceof Uint8Array) return `[${value.byteLength} bytes]`
  if (value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`
  if (depth > 6) return '[deep]'
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown; shortMessage?: unknown }
    return {
      name: e.name,
      ...(e.code === undefined ? {} : { code: redact(e.code, depth + 1) }),
      message: typeof e.shortMessage === 'string' ? e.shortMessage : e.message,
    }
  }
  if (value instanceof Date) return value.toISOString()
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => redact(v, depth + 1))
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function')
    return redact((value as { toJSON: () => unknown }).toJSON(), depth + 1)
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value as Record<string, unknown>))
    out[k] = SECRET_FIELD.test(k) ? REDACTED : redact(v, depth + 1)
  return out
}
