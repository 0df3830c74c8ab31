/**
 * A blockstore whose blocks are either copies (a `FsBlockstore` under `blocks/`) or references
 * to the bytes of local files (`filestore/`, one small entry per block, same sharding): the
 * layout of Kubo's filestore. `pi-node seal` keeps the sealed capsule in its folder anyway;
 * storing its leaves as references instead of a second copy halves what a seal writes.
 *
 * A referenced block is read from its file and trusted only while the file keeps the size and
 * modification time it had when the block was hashed; otherwise it is hashed again on every
 * read, and a changed block is refused (`CAPSULE_STORE`). A rewrite that keeps the size and
 * puts the old modification time back (`touch -d`) is not caught here: such a block would be
 * served, and every fetcher refuses it (bitswap checks each block against its CID). A missing
 * file makes the block absent (`has` is false, `get` is `NotFoundError`).
 */
import { open, stat } from 'node:fs/promises'
import { BaseBlockstore } from 'blockstore-core'
import { FsBlockstore } from 'blockstore-fs'
import type { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { CapsuleStoreError } from '../errors.ts'
import { sha256Leaf } from '../import/hash-leaf.ts'
import { decodeFileReference, encodeFileReference, type FileReference } from './file-reference.ts'

interface Options {
  signal?: AbortSignal
}

/** The error name helia and the blockstores use for an absent block. */
class NotFoundError extends Error {
  override name = 'NotFoundError'
}

/** References kept in memory: 4096 entries is 4 GiB of capsule, ~1 MiB of memory. */
const REFERENCE_CACHE_ENTRIES = 4096

/** Only SHA-256 blocks can be references: the hash is checked again on every read. */
export const REFERENCE_HASH_CODE = sha256.code

async function concat(parts: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const c of parts) {
    chunks.push(c)
    size += c.byteLength
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array
  const out = new Uint8Array(size)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return out
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

export class FilestoreBlockstore extends BaseBlockstore {
  readonly #blocks: FsBlockstore
  readonly #refs: FsBlockstore
  /** References read lately (an entry is a few hundred bytes); dropped with their block. */
  readonly #cache = new Map<string, FileReference>()
  /** Copies being written, by CID: a second `put` of the same block joins the first. */
  readonly #writing = new Map<string, Promise<CID>>()

  /** `blocksPath`: the copies (`<dataDir>/blocks`); `refsPath`: the references. */
  constructor(blocksPath: string, refsPath: string) {
    super()
    this.#blocks = new FsBlockstore(blocksPath)
    this.#refs = new FsBlockstore(refsPath)
  }

  async open(): Promise<void> {
    await this.#blocks.open()
    await this.#refs.open()
  }

  async close(): Promise<void> {
    await this.#blocks.close()
    await this.#refs.close()
  }

  /**
   * Writes a copy. Two puts of one block at once (two fetch windows waiting for the same leaf)
   * wrote the same temporary file: the second rename failed and `blockstore-fs` (steno) retried
   * it ten times, 100 ms apart, before it gave up: a second's stall per window of a fetch into
   * a data folder (ADR 0050). The second put now joins the first.
   */
  override put(
    key: CID,
    val: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    options?: Options,
  ): Promise<CID> {
    const id = key.toString()
    const pending = this.#writing.get(id)
    if (pending) return pending
    const written = this.#blocks.put(key, val, options).finally(() => this.#writing.delete(id))
    this.#writing.set(id, written)
    return written
  }

  /**
   * Records that the block `key` is the bytes `ref` names, without copying them. The caller
   * has just hashed those bytes (the import does); a read hashes them again when the file's size
   * or modification time changed since (see the file's comment).
   * @throws {CapsuleStoreError} for a block that is not SHA-256 or a reference that is not one.
   */
  async putReference(key: CID, ref: FileReference, options?: Options): Promise<CID> {
    if (key.multihash.code !== REFERENCE_HASH_CODE) {
      throw new CapsuleStoreError('Only SHA-256 blocks can be kept as file references', {
        details: { cid: key.toString(), hash: key.multihash.code },
      })
    }
    const encoded = encodeFileReference(ref)
    if (!decodeFileReference(encoded)) {
      throw new CapsuleStoreError('Not a file reference', {
        details: { ...ref },
        hint: 'Give an absolute path and whole, non-negative offset and length.',
      })
    }
    await this.#refs.put(key, encoded, options)
    this.#cache.delete(key.toString())
    return key
  }

  /** The reference stored for `key`, if any (a corrupt entry is none). */
  async reference(key: CID, options?: Options): Promise<FileReference | undefined> {
    const id = key.toString()
    const cached = this.#cache.get(id)
    if (cached) return cached
    if (!(await this.#refs.has(key, options))) return undefined
    try {
      const ref = decodeFileReference(await concat(this.#refs.get(key, options)))
      if (ref) {
        // helia asks `has` then `get` for each block served: read the entry once
        if (this.#cache.size >= REFERENCE_CACHE_ENTRIES) this.#cache.clear()
        this.#cache.set(id, ref)
      }
      return ref
    } catch {
      return undefined
    }
  }

  override async has(key: CID, options?: Options): Promise<boolean> {
    if (await this.#blocks.has(key, options)) return true
    const ref = await this.reference(key, options)
    if (!ref) return false
    const info = await stat(ref.path).catch(() => undefined)
    return info?.isFile() === true && info.size >= ref.offset + ref.length
  }

  override async *get(key: CID, options?: Options): AsyncGenerator<Uint8Array> {
    if (await this.#blocks.has(key, options)) {
      yield* this.#blocks.get(key, options)
      return
    }
    const ref = await this.reference(key, options)
    if (!ref) throw new NotFoundError(`Block ${key} is not in the store`)
    yield await this.#read(key, ref, options)
  }

  async #read(key: CID, ref: FileReference, options?: Options): Promise<Uint8Array> {
    options?.signal?.throwIfAborted()
    const file = await open(ref.path, 'r').catch((cause) => {
      this.#cache.delete(key.toString())
      throw new NotFoundError(`Block ${key}: its file is gone (${(cause as Error).message})`)
    })
    try {
      const info = await file.stat()
      const bytes = new Uint8Array(ref.length)
      let filled = 0
      while (filled < ref.length) {
        const { bytesRead } = await file.read(
          bytes,
          filled,
          ref.length - filled,
          ref.offset + filled,
        )
        if (bytesRead === 0) break
        filled += bytesRead
      }
      // the file as it was hashed (same size, same mtime): its bytes are the block's
      const unchanged =
        ref.stamp !== undefined &&
        info.size === ref.stamp.size &&
        info.mtimeMs === ref.stamp.mtimeMs
      if (
        filled !== ref.length ||
        (!unchanged && !sameBytes((await sha256Leaf(bytes)).digest, key.multihash.digest))
      ) {
        throw new CapsuleStoreError('A block kept as a file reference no longer matches its CID', {
          details: { cid: key.toString(), file: ref.path, offset: ref.offset, length: ref.length },
          hint: 'The file changed after it was added: add it again, or restore it.',
        })
      }
      return bytes
    } finally {
      await file.close()
    }
  }

  override async delete(key: CID, options?: Options): Promise<void> {
    this.#cache.delete(key.toString())
    await this.#blocks.delete(key, options)
    await this.#refs.delete(key, options)
  }

  override async *getAll(
    options?: Options,
  ): AsyncGenerator<{ cid: CID; bytes: AsyncGenerator<Uint8Array> }> {
    yield* this.#blocks.getAll(options) as AsyncGenerator<{
      cid: CID
      bytes: AsyncGenerator<Uint8Array>
    }>
    for await (const { cid } of this.#refs.getAll(options)) {
      if (await this.#blocks.has(cid, options)) continue
      yield { cid, bytes: this.get(cid, options) }
    }
  }
}
