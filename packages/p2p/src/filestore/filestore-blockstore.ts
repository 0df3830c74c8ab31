/**
 * A blockstore whose blocks are either copies (under `blocks/`, laid out as `blockstore-fs` lays
 * them out: `shard-folder.ts`) or references to the bytes of local files: the idea of Kubo's
 * filestore. `pi-node seal` keeps the sealed capsule in its folder anyway; storing its leaves as
 * references instead of a second copy halves what a seal writes. A file's references are one
 * pack (`filestore/packs/`, `reference-pack.ts`, ADR 0102); single references, and those older
 * versions wrote, are one small entry per block (`filestore/`, same sharding as the copies).
 *
 * A referenced block is read from its file and trusted only while the file keeps the size and
 * modification time it had when the block was hashed; otherwise it is hashed again on every
 * read, and a changed block is refused (`CAPSULE_STORE`). A rewrite that keeps the size and
 * puts the old modification time back (`touch -d`) is not caught here: such a block would be
 * served, and every fetcher refuses it (bitswap checks each block against its CID). A missing
 * file makes the block absent (`has` is false, `get` is `NotFoundError`).
 */

import { existsSync, readFileSync, type Stats } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { BaseBlockstore } from 'blockstore-core'
import { CID } from 'multiformats/cid'
import { create } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { CapsuleStoreError } from '../errors.ts'
import { sha256Leaf } from '../import/hash-leaf.ts'
import { decodeFileReference, encodeFileReference, type FileReference } from './file-reference.ts'
import { OpenFiles } from './open-files.ts'
import { PackFolder } from './pack-folder.ts'
import type { PackEntry } from './reference-pack.ts'
import { readBuffer } from './served-read-buffers.ts'
import { isMissing, ShardFolder, TEMP_FILE_MAX_AGE_MS } from './shard-folder.ts'

interface Options {
  signal?: AbortSignal
}

/** The error name helia and the blockstores use for an absent block. */
class NotFoundError extends Error {
  override name = 'NotFoundError'
}

/** References kept in memory: 4096 entries is 4 GiB of capsule, ~1 MiB of memory. */
const REFERENCE_CACHE_ENTRIES = 4096
/**
 * How long a block found absent is answered absent without looking again. Bitswap's serving side
 * asks again for every want still open on every message a peer sends: one peer holding 1,000
 * wants for blocks this node never had, and sending a want every 5 ms, kept its event loop
 * 1–1.5 s behind (review). A block this store writes is never in it; one another process on the
 * data folder adds is seen within this time.
 */
export const ABSENT_RECHECK_MS = 1000
/** Absent blocks remembered at most. */
const ABSENT_ENTRIES = 16_384

/** Blocks `deleteMany` deletes before it writes their packs again (and yields them). */
export const DELETE_BATCH = 1024

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
  /** The copies: each block's bytes in a file of its own. */
  readonly #blocks: ShardFolder
  /** The references: each block's entry naming a file, an offset and a length. */
  readonly #refs: ShardFolder
  /** The references of whole files, a pack each (`<refsPath>/packs`). */
  readonly #packs: PackFolder
  /** References read lately (an entry is a few hundred bytes); dropped with their block. */
  readonly #cache = new Map<string, FileReference>()
  /** Blocks found absent lately, by CID, with when (`ABSENT_RECHECK_MS`). */
  readonly #absent = new Map<string, number>()
  /** Copies being written, by CID: a second `put` of the same block joins the first. */
  readonly #writing = new Map<string, Promise<CID>>()
  /** The files references point into, kept open while their blocks are read (ADR 0061). */
  readonly #files = new OpenFiles()
  /** `stat`s of reference files taken by `has` in this turn of the event loop (`#lookedUp`). */
  readonly #looked = new Map<string, Stats>()

  /** `blocksPath`: the copies (`<dataDir>/blocks`); `refsPath`: the references. */
  constructor(blocksPath: string, refsPath: string) {
    super()
    this.#blocks = new ShardFolder(resolve(blocksPath))
    this.#refs = new ShardFolder(resolve(refsPath))
    this.#packs = new PackFolder(join(resolve(refsPath), 'packs'))
  }

  async open(): Promise<void> {
    await this.#blocks.open()
    await this.#refs.open()
  }

  async close(): Promise<void> {
    await this.#files.close()
  }

  /**
   * Removes the temporary files that writers killed mid-write left in both folders, once older
   * than `olderThanMs` (default an hour: a younger one may be another process's write in
   * progress). A long-running node does it once after it starts (`node.ts`). Returns how many.
   */
  async sweepTemporaryFiles(olderThanMs: number = TEMP_FILE_MAX_AGE_MS): Promise<number> {
    return (
      (await this.#blocks.sweep(olderThanMs)) +
      (await this.#refs.sweep(olderThanMs)) +
      (await this.#packs.sweep(olderThanMs))
    )
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
    this.#absent.delete(id)
    const pending = this.#writing.get(id)
    if (pending) return pending
    const written = this.#writeCopy(key, val, options).finally(() => {
      this.#writing.delete(id)
      // a `has` that ran while the copy was written may have found it absent (review)
      this.#absent.delete(id)
    })
    this.#writing.set(id, written)
    return written
  }

  /**
   * A copy written whole or not at all (`ShardFolder.writeWhole`: a temporary file of its own,
   * renamed to the block's name; `blockstore-fs` did the same through `steno` plus a `mkdir` per
   * block, ADRs 0060 and 0063).
   */
  async #writeCopy(
    key: CID,
    val: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    options?: Options,
  ): Promise<CID> {
    options?.signal?.throwIfAborted()
    const bytes = val instanceof Uint8Array ? val : await concat(val)
    await this.#blocks.writeWhole(key, bytes)
    return key
  }

  /** The copy of `key`, read whole in one go; `undefined` if there is none. */
  async #readCopy(key: CID, options?: Options): Promise<Uint8Array | undefined> {
    options?.signal?.throwIfAborted()
    try {
      return await readFile(this.#blocks.paths(key).file)
    } catch (err) {
      if (isMissing(err)) return undefined
      throw err
    }
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
    options?.signal?.throwIfAborted()
    await this.#refs.writeWhole(key, encoded)
    this.#cache.delete(key.toString())
    this.#absent.delete(key.toString())
    return key
  }

  /**
   * Records that the blocks `entries` name are bytes of the file at `path`, all at once: one pack
   * (ADR 0102) instead of an entry per block, replacing any pack of that file. As with
   * {@link putReference}, the caller has just hashed those bytes; `stamp` is the file's when it
   * did. The blocks are present once it resolves.
   * @throws {CapsuleStoreError} for a path, stamp or entry that no pack can hold.
   */
  async putReferences(
    path: string,
    stamp: FileReference['stamp'],
    entries: readonly PackEntry[],
    options?: Options,
  ): Promise<void> {
    options?.signal?.throwIfAborted()
    try {
      await this.#packs.write(path, stamp, entries)
    } catch (cause) {
      if (!(cause instanceof RangeError)) throw cause
      throw new CapsuleStoreError('Not a file reference', {
        cause,
        details: { path, entries: entries.length },
        hint: 'Give an absolute path, 32-byte SHA-256 digests and whole offsets and lengths.',
      })
    }
    // blocks found absent or referenced otherwise before: looked up again
    this.#absent.clear()
    this.#cache.clear()
  }

  /** The reference stored for `key`, if any (a corrupt entry is none). */
  async reference(key: CID, options?: Options): Promise<FileReference | undefined> {
    const id = key.toString()
    const cached = this.#cache.get(id)
    if (cached) return cached
    options?.signal?.throwIfAborted()
    const packed =
      key.multihash.code === REFERENCE_HASH_CODE
        ? this.#packs.find(key.multihash.digest)
        : undefined
    if (packed) {
      this.#remember(id, packed)
      return packed
    }
    try {
      // one read; a missing entry (the usual case for a fetched block) is one failed open. On the
      // calling thread: an entry is a few hundred bytes, and the four thread-pool round trips of
      // `readFile` (open, fstat, read, close) cost a serving node ~0.8 ms of event loop per block
      // it first serves, 7 % of a 1 GiB fetch's (ADR 0063)
      const ref = decodeFileReference(readFileSync(this.#refs.paths(key).file))
      if (ref) this.#remember(id, ref)
      return ref
    } catch {
      return undefined
    }
  }

  /** helia asks `has` then `get` for each block served: look the reference up once. */
  #remember(id: string, ref: FileReference): void {
    if (this.#cache.size >= REFERENCE_CACHE_ENTRIES) this.#cache.clear()
    this.#cache.set(id, ref)
  }

  /**
   * A block known as a reference is looked up as one (a `stat` of its file); only otherwise is a
   * copy looked for. Bitswap's serving side asks `has`, then `get`, for every block: both went to
   * the copies first, two missing-file lookups per block served from references (ADR 0060).
   */
  override async has(key: CID, options?: Options): Promise<boolean> {
    const id = key.toString()
    const known = this.#cache.get(id)
    if (known) return (await this.#fileHolds(known)) || (await this.#hasCopy(key, options))
    const since = this.#absent.get(id)
    if (since !== undefined && Date.now() - since < ABSENT_RECHECK_MS) return false
    if (await this.#hasCopy(key, options)) return true
    const ref = await this.reference(key, options)
    if (ref !== undefined && (await this.#fileHolds(ref))) return true
    // not remembered while this store writes it: it is present as soon as the write ends
    if (this.#writing.has(id)) return false
    if (this.#absent.size >= ABSENT_ENTRIES) this.#absent.clear()
    this.#absent.set(id, Date.now())
    return false
  }

  /** Whether a copy of `key` is there: one `access` on the calling thread, not a round trip (ADR 0063). */
  async #hasCopy(key: CID, options?: Options): Promise<boolean> {
    options?.signal?.throwIfAborted()
    return existsSync(this.#blocks.paths(key).file)
  }

  /** Whether `ref`'s file is there and long enough to hold the block. */
  async #fileHolds(ref: FileReference): Promise<boolean> {
    const info = await stat(ref.path).catch(() => undefined)
    const holds = info?.isFile() === true && info.size >= ref.offset + ref.length
    if (holds) this.#lookedUp(ref.path, info)
    return holds
  }

  /**
   * Keeps `stats` of `path` until this turn of the event loop ends: helia's storage asks `has`,
   * then `get` in the same turn, and the read takes the `has`'s `stat` instead of another one
   * (ADR 0061). Either way the file can change between the `stat` and the read (the stamp check
   * is as good as it was).
   */
  #lookedUp(path: string, stats: Stats): void {
    if (this.#looked.size === 0) setImmediate(() => this.#looked.clear())
    this.#looked.set(path, stats)
  }

  /**
   * The block, as one array: from its file if it is a reference this store read lately, else its
   * copy (one `readFile`, not `blockstore-fs`'s 64 KiB chunks that every reader then joins), else
   * a reference read from its entry.
   */
  override async *get(key: CID, options?: Options): AsyncGenerator<Uint8Array> {
    const known = this.#cache.get(key.toString())
    if (known) {
      let refused: unknown
      const bytes = await this.#read(key, known, options).catch((err: Error) => {
        if (err.name !== 'NotFoundError') refused = err
        return undefined
      })
      if (bytes) {
        yield bytes
        return
      }
      // a reference whose file changed: a whole copy of the block, if this store has one, is
      // still the block (as before references were tried first); else the refusal stands
      const copy = await this.#readCopy(key, options)
      if (copy) {
        yield copy
        return
      }
      if (refused !== undefined) throw refused
    }
    const copy = await this.#readCopy(key, options)
    if (copy) {
      yield copy
      return
    }
    const ref = await this.reference(key, options)
    if (!ref) throw new NotFoundError(`Block ${key} is not in the store`)
    yield await this.#read(key, ref, options)
  }

  /**
   * The block's bytes from its file, kept open between reads (`open-files.ts`): a `stat` of the
   * path and a read per block, where each read opened, `fstat`ed and closed the file (ADR 0061).
   */
  async #read(key: CID, ref: FileReference, options?: Options): Promise<Uint8Array> {
    options?.signal?.throwIfAborted()
    const looked = this.#looked.get(ref.path)
    this.#looked.delete(ref.path)
    const file = await this.#files.lease(ref.path, looked).catch((cause) => {
      this.#cache.delete(key.toString())
      throw new NotFoundError(`Block ${key}: its file is gone (${(cause as Error).message})`)
    })
    try {
      const info = file.stats
      // a served block's buffer is reused once its message is encrypted (ADR 0099)
      const bytes = readBuffer(ref.length)
      let filled = 0
      while (filled < ref.length) {
        const { bytesRead } = await file.handle.read(
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
      file.release()
    }
  }

  override async delete(key: CID, options?: Options): Promise<void> {
    options?.signal?.throwIfAborted()
    this.#cache.delete(key.toString())
    await this.#blocks.remove(key)
    await this.#refs.remove(key)
    if (key.multihash.code === REFERENCE_HASH_CODE)
      await this.#packs.removeMany([key.multihash.digest])
    // again: a lookup while a pack was being rewritten found the block still held and cached it
    this.#cache.delete(key.toString())
  }

  /**
   * Deletes `source`'s blocks, yielding each once it is gone. Packed references go in batches of
   * {@link DELETE_BATCH}: each pack is written again once a batch, not once a block (dropping a
   * 4 GiB capsule block by block rewrote its 180 KiB pack 4,096 times).
   */
  override async *deleteMany(
    source: AsyncIterable<CID> | Iterable<CID>,
    options?: Options,
  ): AsyncGenerator<CID> {
    let batch: CID[] = []
    const flush = async () => {
      const packed = batch.filter((k) => k.multihash.code === REFERENCE_HASH_CODE)
      if (packed.length > 0) await this.#packs.removeMany(packed.map((k) => k.multihash.digest))
      for (const key of batch) this.#cache.delete(key.toString())
      const done = batch
      batch = []
      return done
    }
    for await (const key of source) {
      options?.signal?.throwIfAborted()
      this.#cache.delete(key.toString())
      await this.#blocks.remove(key)
      await this.#refs.remove(key)
      batch.push(key)
      if (batch.length >= DELETE_BATCH) yield* await flush()
    }
    yield* await flush()
  }

  /**
   * Every block: the copies, then the references that have no copy (named as `blockstore-fs`
   * names them: the multihash read back as a CID). A block removed before its folder is listed is
   * not listed; one removed after it is listed fails when its bytes are read (`NotFoundError`;
   * `blockstore-fs` threw the file system's `ENOENT` there).
   */
  override async *getAll(
    options?: Options,
  ): AsyncGenerator<{ cid: CID; bytes: AsyncGenerator<Uint8Array> }> {
    for await (const { cid, file } of this.#blocks.keys(options)) {
      yield { cid, bytes: fileBytes(file) }
    }
    const listed = new Set<string>()
    const named = (cid: CID) => Buffer.from(cid.multihash.bytes).toString('base64')
    for await (const { cid } of this.#refs.keys(options)) {
      listed.add(named(cid))
      if (await this.#hasCopy(cid, options)) continue
      yield { cid, bytes: this.get(cid, options) }
    }
    for (const { digest } of this.#packs.entries()) {
      options?.signal?.throwIfAborted()
      // named as the entries are: the multihash read back as a CID (version 0)
      const cid = CID.createV0(create(sha256.code, digest))
      const id = named(cid)
      if (listed.has(id)) continue
      listed.add(id)
      if (await this.#hasCopy(cid, options)) continue
      yield { cid, bytes: this.get(cid, options) }
    }
  }
}

/** A file's bytes, read when asked for (a listing does not read what its caller skips). */
async function* fileBytes(file: string): AsyncGenerator<Uint8Array> {
  try {
    yield await readFile(file)
  } catch (err) {
    if (!isMissing(err)) throw err
    throw new NotFoundError(`Block file ${file} is gone`)
  }
}
