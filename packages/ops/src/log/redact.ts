/**
 * What a log line may hold: secrets are dropped by field name, bytes by type (a byte array in
 * a daemon is a key more often than not), errors keep their name, code and message only; in
 * every string (messages included) a run of 64 or more hex digits — a private or data key's
 * size — is masked unless its field names a public id (`grantId`, `txHash`…), and a URL keeps
 * its scheme and host only (its user, password, query and, off loopback, path can hold an API key).
 */

/** Field names whose values are never written (matched case-insensitively, anywhere in the name). */
export const SECRET_FIELD =
  /mnemonic|words|private|priv(?:key|_key)?$|secret|seed|password|passphrase|passwd|token|datakey|data_key|apikey|api_key|signingkey|signing_key|^keys?$|[_-]keys?$|auth(?!or)|credential|cookie|^pin$|^sk$|[_-]sk$/i

/** camelCase names that end in `Key`, `Keys` or `Sk` (`ownerKey`, `sessionSk`), public keys aside. */
const CAMEL_SECRET = /[a-z0-9](?:Keys?|Sk)$/
/**
 * Keys that are public by what they name: the protocol's X25519 run and receiver keys (in every
 * grant and header), the release journal's executor key (the run's ephemeral key), and the TPM's
 * attestation key.
 */
const PUBLIC_KEY = /public|pubkey|pub_key|^(?:ephemeral|receiver|executor|attestation)Keys?$/i

/** Whether a field of this name holds a secret (its value is written as `[redacted]`). */
export function isSecretField(name: string): boolean {
  if (SECRET_FIELD.test(name)) return true
  return CAMEL_SECRET.test(name) && !PUBLIC_KEY.test(name)
}

/**
 * Fields whose 64-hex values are public ids (a grant, a capsule, a transaction, a block): the
 * whole name (`id`, `cid`, `hash`), a camelCase suffix (`grantId`, `txHash`) or a snake_case one
 * (`grant_id`). Case-sensitive, so `paid`, `valid` or `void` are not ids.
 */
const PUBLIC_ID_FIELD =
  /^(?:id|ids|hash|hashes|root|digest|cid)$|[a-z0-9](?:Id|Ids|ID|Hash|Hashes|Root|Digest|Cid|CID)$|_(?:id|ids|hash|hashes|root|digest|cid)$/

export const REDACTED = '[redacted]'

const HEX_RUN = /(?<![0-9a-fA-F])[0-9a-fA-F]{64,}(?![0-9a-fA-F])/g
const URL_RUN = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi

function isLoopbackName(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/** A URL with what may hold a secret taken out: user and password, query, fragment, and path off loopback. */
function scrubUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return text
  }
  if (url.host === '') return text
  const secretish =
    url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== ''
  const keepPath = isLoopbackName(url.hostname)
  const path = url.pathname === '/' || url.pathname === '' ? '' : keepPath ? url.pathname : '/…'
  if (!secretish && path === url.pathname.replace(/^\/$/, '')) return text
  return `${url.protocol}//${url.host}${path}${secretish ? ` ${REDACTED}` : ''}`
}

/** A string safe to write: URLs scrubbed, long hex runs masked (unless `hexIsId`). */
export function redactText(text: string, hexIsId = false): string {
  let out = text.includes('://') ? text.replace(URL_RUN, scrubUrl) : text
  if (!hexIsId) out = out.replace(HEX_RUN, (run) => `${run.slice(0, 4)}…${REDACTED}`)
  return out
}

/** A copy of `value` safe to write: JSON-able, secrets and bytes replaced. */
export function redact(value: unknown, depth = 0, name = ''): unknown {
  if (value === null || value === undefined) return value
  if (typeof value === 'bigint') return value.toString()
  if (typeof value === 'string') return redactText(value, PUBLIC_ID_FIELD.test(name))
  if (typeof value === 'number' || typeof value === 'boolean') return value
  if (typeof value === 'function' || typeof value === 'symbol') return undefined
  if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer)
    return `[${value.byteLength} bytes]`
  if (depth > 6) return '[deep]'
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown; shortMessage?: unknown }
    return {
      name: e.name,
      ...(e.code === undefined ? {} : { code: redact(e.code, depth + 1) }),
      message: redactText(typeof e.shortMessage === 'string' ? e.shortMessage : e.message),
    }
  }
  if (value instanceof Date) return value.toISOString()
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => redact(v, depth + 1, name))
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function')
    return redact((value as { toJSON: () => unknown }).toJSON(), depth + 1, name)
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value as Record<string, unknown>))
    out[k] = isSecretField(k) ? REDACTED : redact(v, depth + 1, k)
  return out
}
