/**
 * A reference pack: every block reference of one file, in one file of its own (ADR 0102). An
 * add of 1 GiB kept 1,024 reference entries, one small file each; made while capsule-core flushed
 * the capsule, each file creation waited on the file system's journal (~0.5 ms each, half a
 * second of a 1 GiB `pi-node seal`). A pack is one write.
 *
 * Layout (integers little-endian):
 *
 * | bytes  | field                                                                          |
 * | ------ | ------------------------------------------------------------------------------ |
 * | 8      | magic `DCRPACK1` (ASCII)                                                        |
 * | 4      | H, length of the header                                                        |
 * | H      | header: UTF-8 JSON `{"path": <absolute path>, "stamp"?: {"size", "mtimeMs"}}`  |
 * | 4      | N, number of entries                                                           |
 * | 44 × N | entries: SHA-256 digest (32), offset (u64), length (u32); sorted by digest, strictly ascending |
 * | 32     | SHA-256 of every byte before it                                                |
 *
 * Every entry's block is `length` bytes at `offset` of the header's file, and its CID's multihash
 * is SHA-256 with that digest (any codec: a store is keyed by multihash). `stamp` is
 * {@link FileReference}'s. A pack that breaks any rule (magic, lengths, JSON, order, a length
 * over {@link MAX_REFERENCED_BLOCK}, an offset or a block's end (offset + length) past 2^53 − 1, the checksum, a file over
 * {@link MAX_PACK_BYTES}) is not a pack: none of its entries is read.
 */
import { createHash } from 'node:crypto'
import { type FileReference, isFileReference, MAX_REFERENCED_BLOCK } from './file-reference.ts'

export const PACK_MAGIC = new TextEncoder().encode('DCRPACK1')
const DIGEST = 32
export const PACK_ENTRY_BYTES = DIGEST + 8 + 4
const CHECKSUM = 32
/** A header is a path and a stamp; anything larger is not one. */
const MAX_HEADER_BYTES = 8192
/**
 * The largest pack: 1.5 million entries, the leaves of a 1.5 TiB file. A larger file is not a
 * pack and is never read (reading it would allocate its size).
 */
export const MAX_PACK_BYTES = 64 * 1024 * 1024

/** One block of the pack's file. */
export interface PackEntry {
  /** The block's SHA-256. */
  digest: Uint8Array
  offset: number
  length: number
}

/** A pack read into memory: the file it names and its entries, found by digest. */
export class ReferencePack {
  readonly path: string
  readonly stamp: FileReference['stamp']
  readonly count: number
  /** The entries as stored (sorted by digest), 44 bytes each. */
  readonly #entries: Buffer

  constructor(path: string, stamp: FileReference['stamp'], entries: Buffer) {
    this.path = path
    this.stamp = stamp
    this.#entries = entries
    this.count = entries.byteLength / PACK_ENTRY_BYTES
  }

  /** The reference of the block whose SHA-256 is `digest`, if this pack has it. */
  find(digest: Uint8Array): FileReference | undefined {
    if (digest.byteLength !== DIGEST) return undefined
    let lo = 0
    let hi = this.count - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const at = mid * PACK_ENTRY_BYTES
      const order = this.#entries.compare(digest, 0, DIGEST, at, at + DIGEST)
      if (order === 0) return this.#reference(at)
      if (order < 0) lo = mid + 1
      else hi = mid - 1
    }
    return undefined
  }

  /** Every entry, in digest order. */
  *entries(): Generator<PackEntry> {
    for (let at = 0; at < this.#entries.byteLength; at += PACK_ENTRY_BYTES) {
      const { offset, length } = this.#reference(at)
      yield { digest: this.#entries.subarray(at, at + DIGEST), offset, length }
    }
  }

  #reference(at: number): FileReference {
    return {
      path: this.path,
      offset: Number(this.#entries.readBigUInt64LE(at + DIGEST)),
      length: this.#entries.readUInt32LE(at + DIGEST + 8),
      ...(this.stamp ? { stamp: { ...this.stamp } } : {}),
    }
  }
}

/**
 * The pack of `entries` in the file at `path`. Entries may come in any order; one digest given
 * twice is kept once (the first).
 * @throws {RangeError} for a path, stamp, digest, offset or length no pack can hold.
 */
export function encodeReferencePack(
  path: string,
  stamp: FileReference['stamp'],
  entries: readonly PackEntry[],
): Uint8Array {
  if (!isFileReference({ path, offset: 0, length: 0, ...(stamp ? { stamp } : {}) }))
    throw new RangeError('a pack names an absolute path and a whole stamp')
  const header = Buffer.from(
    JSON.stringify({
      path,
      ...(stamp ? { stamp: { size: stamp.size, mtimeMs: stamp.mtimeMs } } : {}),
    }),
  )
  if (header.byteLength > MAX_HEADER_BYTES) throw new RangeError('the path is too long for a pack')
  const sorted = [...entries].sort((a, b) => Buffer.compare(a.digest, b.digest))
  const kept = sorted.filter(
    (e, i) => i === 0 || Buffer.compare(e.digest, (sorted[i - 1] as PackEntry).digest) !== 0,
  )
  const size =
    PACK_MAGIC.byteLength + 4 + header.byteLength + 4 + kept.length * PACK_ENTRY_BYTES + CHECKSUM
  if (size > MAX_PACK_BYTES) throw new RangeError('too many entries for one pack')
  const out = Buffer.alloc(size)
  out.set(PACK_MAGIC)
  let at = out.writeUInt32LE(header.byteLength, PACK_MAGIC.byteLength)
  at += header.copy(out, at)
  at = out.writeUInt32LE(kept.length, at)
  for (const e of kept) {
    if (
      e.digest.byteLength !== DIGEST ||
      !Number.isSafeInteger(e.offset) ||
      e.offset < 0 ||
      !Number.isSafeInteger(e.length) ||
      e.length < 0 ||
      e.length > MAX_REFERENCED_BLOCK ||
      e.offset + e.length > Number.MAX_SAFE_INTEGER
    )
      throw new RangeError('a pack entry is a 32-byte digest, a whole offset and a block length')
    out.set(e.digest, at)
    out.writeBigUInt64LE(BigInt(e.offset), at + DIGEST)
    out.writeUInt32LE(e.length, at + DIGEST + 8)
    at += PACK_ENTRY_BYTES
  }
  createHash('sha256').update(out.subarray(0, at)).digest().copy(out, at)
  return out
}

/** The pack in `bytes`, or `undefined` if they are not one (see the layout's rules). */
export function decodeReferencePack(bytes: Uint8Array): ReferencePack | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf.byteLength > MAX_PACK_BYTES) return undefined
  const fixed = PACK_MAGIC.byteLength + 4 + 4 + CHECKSUM
  if (buf.byteLength < fixed || buf.compare(PACK_MAGIC, 0, PACK_MAGIC.byteLength, 0, 8) !== 0)
    return undefined
  const headerLength = buf.readUInt32LE(8)
  if (headerLength > MAX_HEADER_BYTES || buf.byteLength < fixed + headerLength) return undefined
  const countAt = 12 + headerLength
  const count = buf.readUInt32LE(countAt)
  const entriesAt = countAt + 4
  const end = entriesAt + count * PACK_ENTRY_BYTES
  if (buf.byteLength !== end + CHECKSUM) return undefined
  const sum = createHash('sha256').update(buf.subarray(0, end)).digest()
  if (sum.compare(buf, end, end + CHECKSUM) !== 0) return undefined
  let header: { path?: unknown; stamp?: unknown }
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(12, countAt)))
  } catch {
    return undefined
  }
  if (typeof header !== 'object' || header === null) return undefined
  // a stamp named is a whole stamp: `"stamp": null` (or 0, false) is not "no stamp"
  const named = Object.hasOwn(header, 'stamp')
  const stamp = header.stamp as FileReference['stamp']
  if (!isFileReference({ path: header.path, offset: 0, length: 0, ...(named ? { stamp } : {}) }))
    return undefined
  // a copy: the pack outlives the read's buffer, and holds only its entries
  const entries = Buffer.from(buf.subarray(entriesAt, end))
  for (let at = 0; at < entries.byteLength; at += PACK_ENTRY_BYTES) {
    // this digest against the one before: strictly greater, or the pack is not one
    const previous = at - PACK_ENTRY_BYTES
    if (at > 0 && entries.compare(entries, previous, previous + DIGEST, at, at + DIGEST) <= 0)
      return undefined
    const offset = entries.readBigUInt64LE(at + DIGEST)
    const length = entries.readUInt32LE(at + DIGEST + 8)
    if (length > MAX_REFERENCED_BLOCK) return undefined
    // the block's end too: a read at offset + length must stay a whole number
    if (offset + BigInt(length) > BigInt(Number.MAX_SAFE_INTEGER)) return undefined
  }
  return new ReferencePack(
    header.path as string,
    stamp ? { size: stamp.size, mtimeMs: stamp.mtimeMs } : undefined,
    entries,
  )
}
