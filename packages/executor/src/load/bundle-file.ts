/**
 * A code+data bundle read from the run's plaintext file instead of memory (ADR 0035). The
 * bundle is canonical CBOR (capsule-core's `encodeBundle`), whose sorted keys put `data` first:
 * `a4 61 76 01 64 'data' <bstr header> <data> 65 'entry' … 65 'files' …`. So the data's range
 * is known from the first bytes, it is hashed as it streams by, and only the small tail (entry
 * and code files) is read back and decoded, strictly, by capsule-core's own `decodeBundle`.
 */
import { open } from 'node:fs/promises'
import { BundleFormatError, decodeBundle } from '@digicap/capsule-core'
import type { JobInputFile, RuntimeDescriptor, SandboxJob } from '../sandbox/types.ts'
import { jobFromBundle } from './bundle.ts'

/** `{` 4 pairs, `"v": 1`, `"data":` — every version-1 bundle starts with these 9 bytes. */
const START = Uint8Array.from([0xa4, 0x61, 0x76, 0x01, 0x64, 0x64, 0x61, 0x74, 0x61])
/** The longest prefix: START and a bstr header with an 8-byte length. */
export const BUNDLE_PREFIX_MAX = START.byteLength + 9

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
  const n = Math.min(head.byteLength, START.byteLength)
  for (let i = 0; i < n; i++) if (head[i] !== START[i]) return 'bad'
  if (head.byteLength <= START.byteLength) return 'more'
  const h = head[START.byteLength] as number
  if (h >> 5 !== 2) return 'bad'
  const info = h & 0x1f
  const extra =
    info < 24 ? 0 : info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1
  if (extra < 0) return 'bad'
  const start = START.byteLength + 1 + extra
  if (head.byteLength < start) return 'more'
  let size = info
  if (extra > 0) {
    const dv = new DataView(head.buffer, head.byteOffset + START.byteLength + 1, extra)
    const big =
      extra === 8
        ? dv.getBigUint64(0)
        : BigInt(extra === 1 ? dv.getUint8(0) : extra === 2 ? dv.getUint16(0) : dv.getUint32(0))
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) return 'bad'
    size = Number(big)
  }
  // Canonical CBOR uses the shortest header: anything else is not a bundle encodeBundle wrote.
  const canonical = bstrHeader(size)
  if (canonical.byteLength !== start - START.byteLength) return 'bad'
  return { start, size }
}

function malformed(reason: string, details: Record<string, unknown> = {}): BundleFormatError {
  return new BundleFormatError('Malformed code+data bundle', { details: { reason, ...details } })
}

/**
 * The sandbox job of a bundle held in the plaintext file at `path` (`fileSize` bytes), whose
 * data range and digest the streaming open found. The tail (entry and code files) is read back
 * and decoded strictly: the bundle with empty data must be canonical, so the whole one is.
 * @throws BundleFormatError for anything that is not a canonical version-1 bundle.
 */
export async function jobFromBundleFile(p: {
  readonly runtime: RuntimeDescriptor
  readonly path: string
  readonly fileSize: number
  readonly range: { readonly start: number; readonly size: number } | undefined
  readonly sha256: Uint8Array
  readonly args?: readonly string[] | undefined
  /** Largest tail (code files) read back; default capsule-core's bundle limit. */
  readonly maxTailBytes?: number | undefined
}): Promise<SandboxJob> {
  const { range } = p
  if (!range || range.start + range.size > p.fileSize) {
    throw malformed('not valid canonical CBOR', { error: 'not a version-1 bundle prefix' })
  }
  const tailAt = range.start + range.size
  const tailSize = p.fileSize - tailAt
  const max = p.maxTailBytes ?? 256 * 1024 * 1024
  if (tailSize > max) throw malformed('bundle too large', { bytes: tailSize, maxBytes: max })
  const withoutData = new Uint8Array(START.byteLength + 1 + tailSize)
  withoutData.set(START)
  withoutData[START.byteLength] = 0x40 // data: the empty byte string
  const fh = await open(p.path, 'r')
  try {
    const { bytesRead } = await fh.read(withoutData, START.byteLength + 1, tailSize, tailAt)
    if (bytesRead !== tailSize) throw malformed('bundle shorter than its header says')
  } finally {
    await fh.close()
  }
  const job = jobFromBundle(p.runtime, decodeBundle(withoutData), p.args)
  // The code is a copy (the job's to zero); the rest of the tail is plaintext too.
  const code = job.code.slice()
  withoutData.fill(0)
  const inputFile: JobInputFile = {
    path: p.path,
    offset: range.start,
    size: range.size,
    sha256: p.sha256,
  }
  return { ...job, code, input: new Uint8Array(0), inputFile }
}
