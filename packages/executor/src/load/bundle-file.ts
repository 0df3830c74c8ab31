/**
 * A code+data bundle read from the run's plaintext file instead of memory (ADR 0035). The
 * bundle is canonical CBOR (capsule-core's `encodeBundle`), whose sorted keys put `data` first:
 * `a4 61 76 01 64 'data' <bstr header> <data> 65 'entry' … 65 'files' …`. So the data's range
 * is known from the first bytes, and only those and the small tail (entry and code files) are
 * read back, the tail decoded, strictly, by capsule-core's own `decodeBundle`.
 */
import { type FileHandle, open } from 'node:fs/promises'
import { BundleFormatError, decodeBundle } from '@digicap/capsule-core'
import type {
  JobInputFile,
  PlaintextFileStamp,
  RuntimeDescriptor,
  SandboxJob,
} from '../sandbox/types.ts'
import { jobFromBundle } from './bundle.ts'
import { BUNDLE_PREFIX_MAX, bundleDataRange, BUNDLE_START as START } from './bundle-prefix.ts'

export { BUNDLE_PREFIX_MAX, bundleDataRange } from './bundle-prefix.ts'

function malformed(reason: string, details: Record<string, unknown> = {}): BundleFormatError {
  return new BundleFormatError('Malformed code+data bundle', { details: { reason, ...details } })
}

/**
 * The sandbox job of a bundle held in the plaintext file at `path` (`fileSize` bytes), whose
 * payload digest the streaming open computed (ADR 0059). The data's range is read from the
 * first bytes; the tail (entry and code files) is read back and decoded strictly: the bundle
 * with empty data must be canonical, so the whole one is.
 * @throws BundleFormatError for anything that is not a canonical version-1 bundle.
 */
export async function jobFromBundleFile(p: {
  readonly runtime: RuntimeDescriptor
  readonly path: string
  readonly fileSize: number
  /** The whole plaintext's payload digest (the bundle's encoding, code files included). */
  readonly payloadDigest: Uint8Array
  /** The file as the open left it (the run checks it again, ADR 0055). */
  readonly stamp?: PlaintextFileStamp | undefined
  readonly args?: readonly string[] | undefined
  /** Largest tail (code files) read back; default capsule-core's bundle limit. */
  readonly maxTailBytes?: number | undefined
}): Promise<SandboxJob> {
  const max = p.maxTailBytes ?? 256 * 1024 * 1024
  const fh = await open(p.path, 'r')
  let withoutData: Uint8Array
  let range: { readonly start: number; readonly size: number }
  try {
    range = await dataRangeOf(fh, p.fileSize)
    const tailAt = range.start + range.size
    const tailSize = p.fileSize - tailAt
    if (tailSize > max) throw malformed('bundle too large', { bytes: tailSize, maxBytes: max })
    withoutData = new Uint8Array(START.byteLength + 1 + tailSize)
    withoutData.set(START)
    withoutData[START.byteLength] = 0x40 // data: the empty byte string
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
    ...(p.stamp ? { stamp: p.stamp } : {}),
  }
  return { ...job, code, input: new Uint8Array(0), inputFile, payloadDigest: p.payloadDigest }
}

/** Where the data lies, from the file's first bytes (zeroed after: they are plaintext). */
async function dataRangeOf(
  fh: FileHandle,
  fileSize: number,
): Promise<{ readonly start: number; readonly size: number }> {
  const head = new Uint8Array(Math.min(BUNDLE_PREFIX_MAX, fileSize))
  try {
    const { bytesRead } = await fh.read(head, 0, head.byteLength, 0)
    const r = bundleDataRange(head.subarray(0, bytesRead))
    if (typeof r === 'string' || r.start + r.size > fileSize) {
      throw malformed('not valid canonical CBOR', { error: 'not a version-1 bundle prefix' })
    }
    return r
  } finally {
    head.fill(0)
  }
}
