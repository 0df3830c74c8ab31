/**
 * A block kept as a reference to bytes of a local file instead of a copy (the layout of
 * Kubo's filestore, `ipfs add --nocopy`): the file's path, the offset and the length of the
 * block's bytes in it. Encoded as one small JSON object, `v` first.
 */
import { isAbsolute } from 'node:path'

export interface FileReference {
  /** Absolute path of the file holding the block's bytes. */
  path: string
  offset: number
  length: number
  /**
   * The whole file's size and modification time (ms) when the block was hashed from it. While
   * both still match, a read trusts the bytes without hashing them again (as git's index trusts
   * a file's stat); any write moves them, and the block is then hashed on every read.
   */
  stamp?: { size: number; mtimeMs: number }
}

const VERSION = 1
/** A reference is a few hundred bytes; anything larger is not one. */
const MAX_REFERENCE_BYTES = 8192
/**
 * The largest block a reference may name: bitswap's 4 MiB message bound (the importer's leaves
 * are 1 MiB). A longer one is not a block of this store: read, it would allocate its length (a
 * hand-made entry of 3 GiB aborted the process; review).
 */
export const MAX_REFERENCED_BLOCK = 4 * 1024 * 1024

export function encodeFileReference(ref: FileReference): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      v: VERSION,
      path: ref.path,
      offset: ref.offset,
      length: ref.length,
      ...(ref.stamp ? { stamp: { size: ref.stamp.size, mtimeMs: ref.stamp.mtimeMs } } : {}),
    }),
  )
}

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0

/** Whether `ref` is a reference this store can follow (absolute path, whole byte counts). */
export function isFileReference(ref: unknown): ref is FileReference {
  const r = ref as FileReference
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.path === 'string' &&
    isAbsolute(r.path) &&
    isCount(r.offset) &&
    isCount(r.length) &&
    r.length <= MAX_REFERENCED_BLOCK &&
    (r.stamp === undefined ||
      (typeof r.stamp === 'object' &&
        r.stamp !== null &&
        isCount(r.stamp.size) &&
        Number.isFinite(r.stamp.mtimeMs)))
  )
}

/** The reference in `bytes`, or `undefined` if they are not one (a corrupt entry is a miss). */
export function decodeFileReference(bytes: Uint8Array): FileReference | undefined {
  if (bytes.byteLength > MAX_REFERENCE_BYTES) return undefined
  try {
    const parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as {
      v?: unknown
    }
    if (parsed?.v !== VERSION || !isFileReference(parsed)) return undefined
    const { path, offset, length, stamp } = parsed
    return {
      path,
      offset,
      length,
      ...(stamp ? { stamp: { size: stamp.size, mtimeMs: stamp.mtimeMs } } : {}),
    }
  } catch {
    return undefined
  }
}
