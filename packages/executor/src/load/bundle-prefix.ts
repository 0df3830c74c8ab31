/**
 * Where a canonical version-1 bundle’s data lies, from its first bytes (ADR 0035), read back
 * from the run’s plaintext file by `jobFromBundleFile`.
 */
/** `{` 4 pairs, `"v": 1`, `"data":` — every version-1 bundle starts with these 9 bytes. */
export const BUNDLE_START = Uint8Array.from([0xa4, 0x61, 0x76, 0x01, 0x64, 0x64, 0x61, 0x74, 0x61])
/** The longest prefix: START and a bstr header with an 8-byte length. */
export const BUNDLE_PREFIX_MAX = BUNDLE_START.byteLength + 9

/** The canonical (shortest) CBOR header of a byte string of `n` bytes. */
function bstrHeader(n: number): Uint8Array {
  if (n < 24) return Uint8Array.of(0x40 + n)
  if (n < 0x100) return Uint8Array.of(0x58, n)
  if (n < 0x10000) return Uint8Array.of(0x59, n >> 8, n & 0xff)
  const out = new Uint8Array(n < 2 ** 32 ? 5 : 9)
  const dv = new DataView(out.buffer)
  if (n < 2 ** 32) {
    out[0] = 0x5a
    dv.setUint32(1, n)
  } else {
    out[0] = 0x5b
    dv.setBigUint64(1, BigInt(n))
  }
  return out
}

/**
 * Where a bundle's data lies, from its first bytes: `more` while they are too few to tell,
 * `bad` when they are not a version-1 bundle's canonical start.
 */
export function bundleDataRange(
  head: Uint8Array,
): { readonly start: number; readonly size: number } | 'more' | 'bad' {
  const n = Math.min(head.byteLength, BUNDLE_START.byteLength)
  for (let i = 0; i < n; i++) if (head[i] !== BUNDLE_START[i]) return 'bad'
  if (head.byteLength <= BUNDLE_START.byteLength) return 'more'
  const h = head[BUNDLE_START.byteLength] as number
  if (h >> 5 !== 2) return 'bad'
  const info = h & 0x1f
  const extra =
    info < 24 ? 0 : info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1
  if (extra < 0) return 'bad'
  const start = BUNDLE_START.byteLength + 1 + extra
  if (head.byteLength < start) return 'more'
  let size = info
  if (extra > 0) {
    const dv = new DataView(head.buffer, head.byteOffset + BUNDLE_START.byteLength + 1, extra)
    const big =
      extra === 8
        ? dv.getBigUint64(0)
        : BigInt(extra === 1 ? dv.getUint8(0) : extra === 2 ? dv.getUint16(0) : dv.getUint32(0))
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) return 'bad'
    size = Number(big)
  }
  // Canonical CBOR uses the shortest header: anything else is not a bundle encodeBundle wrote.
  const canonical = bstrHeader(size)
  if (canonical.byteLength !== start - BUNDLE_START.byteLength) return 'bad'
  return { start, size }
}
