/**
 * A fixed set of equal-sized buffers, reused chunk after chunk. The import reads the capsule
 * into these instead of a fresh allocation per chunk: memory stays at `count × size` whatever
 * the capsule's size, and the garbage collector has no megabyte buffers to chase (a fresh
 * 1 MiB buffer per chunk cost as much time in GC as hashing the capsule).
 */
import { CapsuleStoreError } from '../errors.ts'

export interface BufferPool {
  /** Bytes in each buffer. */
  readonly bufferSize: number
  /** How many buffers the pool owns (all it will ever allocate). */
  readonly count: number
  /** Buffers handed out and not yet released. */
  readonly inUse: number
  /** The most buffers that were out at once. */
  readonly maxInUse: number
  /**
   * A free buffer.
   * @throws {CapsuleStoreError} when all are out: a caller holds more than the pool allows.
   */
  acquire(): Uint8Array
  /** Gives back a buffer (or any view of it); views of other memory are ignored. */
  release(view: Uint8Array): void
}

export function createBufferPool(count: number, bufferSize: number): BufferPool {
  const free: Uint8Array[] = []
  const owned = new Map<ArrayBufferLike, Uint8Array>()
  for (let i = 0; i < count; i++) {
    // allocUnsafeSlow: a buffer of its own (not a slice of node's shared pool), so each
    // view's `.buffer` names the one pool buffer it came from.
    const buf = Buffer.allocUnsafeSlow(bufferSize)
    owned.set(buf.buffer, buf)
    free.push(buf)
  }
  let maxInUse = 0
  return {
    bufferSize,
    count,
    get inUse() {
      return count - free.length
    },
    get maxInUse() {
      return maxInUse
    },
    acquire() {
      const buf = free.pop()
      if (!buf) {
        throw new CapsuleStoreError('The import holds more chunks than its pool', {
          details: { count, bufferSize },
        })
      }
      maxInUse = Math.max(maxInUse, count - free.length)
      return buf
    },
    release(view) {
      const buf = owned.get(view.buffer)
      if (buf && !free.includes(buf)) free.push(buf)
    },
  }
}
