/**
 * Read buffers reused for the blocks a node serves from file references (ADR 0099). Each served
 * block was read into a fresh 1 MiB array and dropped once sent; that array memory (with the
 * fetcher's own) is what starts V8's mark-compacts, about one per 60 MB allocated, each ~40 ms
 * of marking on V8's helper threads. A buffer comes back here only when the block's sender
 * knows nothing can read it again: its message went through noise, which encrypts into new
 * buffers as it takes the bytes (`install.ts` checks that nothing of it waits unencrypted).
 *
 * Only reads made inside {@link readForServing} take a reused buffer; any other read of the
 * store (a local reader, the import) gets an array of its own, as before, and never comes back
 * here.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

/** Buffers kept for reuse at most, all sizes together (a node serving holds ≤ 4 blocks a peer). */
export const SERVED_READ_BUFFER_BYTES = 16 * 1024 * 1024

/** Reads made for a served block: the store may hand out a reused buffer. */
const serving = new AsyncLocalStorage<true>()

/** Runs `read` (a block read for serving it) so the store's reads take reusable buffers. */
export function readForServing<T>(read: () => Promise<T>): Promise<T> {
  return serving.run(true, read)
}

/** Buffers of served reads handed out and not given back (by their memory). */
const issued = new WeakSet<ArrayBufferLike>()
/** Buffers given back, by length. */
const free = new Map<number, Uint8Array[]>()
let freeBytes = 0
/** Counters for tests and the bench: buffers taken anew, taken again, given back. */
export const servedReadBufferCounts = { fresh: 0, reused: 0, recycled: 0 }

/**
 * An array of `length` bytes for a block read: a reused one inside {@link readForServing}, a new
 * one otherwise. Its content is whatever it held: the caller overwrites all of it or discards it.
 */
export function readBuffer(length: number): Uint8Array {
  if (serving.getStore() !== true) return new Uint8Array(length)
  const kept = free.get(length)?.pop()
  let bytes: Uint8Array
  if (kept !== undefined) {
    freeBytes -= length
    servedReadBufferCounts.reused++
    bytes = kept
  } else {
    servedReadBufferCounts.fresh++
    bytes = new Uint8Array(length)
  }
  issued.add(bytes.buffer)
  return bytes
}

/**
 * Gives a served block's array back once its bytes can no longer be read by anyone (see the
 * file's comment). Anything else (an array this module did not hand out, a view of part of one,
 * one given back already) is ignored.
 */
export function recycleServedBlock(bytes: Uint8Array): void {
  const memory = bytes.buffer
  if (!issued.has(memory) || bytes.byteOffset !== 0 || bytes.byteLength !== memory.byteLength) {
    return
  }
  issued.delete(memory)
  if (freeBytes + bytes.byteLength > SERVED_READ_BUFFER_BYTES) return
  let list = free.get(bytes.byteLength)
  if (list === undefined) {
    list = []
    free.set(bytes.byteLength, list)
  }
  list.push(bytes)
  freeBytes += bytes.byteLength
  servedReadBufferCounts.recycled++
}
