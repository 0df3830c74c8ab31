/**
 * Hashes the data range of a plaintext stream as it passes (ADR 0035): the whole stream, or
 * (bundle) the data byte string whose place the first bytes tell. Loaded by the open's hash
 * worker too, so it imports nothing but node:crypto and the bundle prefix.
 */
import { createHash } from 'node:crypto'
import { BUNDLE_PREFIX_MAX, bundleDataRange } from '../../load/bundle-prefix.ts'

/** Where the data lay and its SHA-256 (`range` undefined: not a bundle's canonical start). */
export interface HashedDataRange {
  readonly range: { readonly start: number; readonly size: number } | undefined
  readonly sha256: Uint8Array
}

export class DataRangeHasher {
  readonly #hash = createHash('sha256')
  readonly #head: Uint8Array | undefined
  #headLen = 0
  #pos = 0
  #range: { start: number; size: number } | undefined
  #bad = false
  constructor(bundle: boolean, total: number) {
    if (bundle) this.#head = new Uint8Array(BUNDLE_PREFIX_MAX)
    else this.#range = { start: 0, size: total }
  }
  push(chunk: Uint8Array): void {
    let c = chunk
    if (!this.#range && !this.#bad && this.#head) {
      const take = Math.min(c.byteLength, this.#head.byteLength - this.#headLen)
      this.#head.set(c.subarray(0, take), this.#headLen)
      this.#headLen += take
      c = c.subarray(take)
      const r = bundleDataRange(this.#head.subarray(0, this.#headLen))
      if (r === 'bad' || (r === 'more' && this.#headLen === this.#head.byteLength)) this.#bad = true
      else if (r !== 'more') {
        this.#range = r
        this.#update(this.#head.subarray(0, this.#headLen), 0)
      }
      this.#pos = this.#headLen
    }
    if (this.#range) this.#update(c, this.#pos)
    this.#pos += c.byteLength
  }
  #update(bytes: Uint8Array, at: number): void {
    const r = this.#range as { start: number; size: number }
    const lo = Math.max(r.start, at)
    const hi = Math.min(r.start + r.size, at + bytes.byteLength)
    if (hi > lo) this.#hash.update(bytes.subarray(lo - at, hi - at))
  }
  digest(): HashedDataRange {
    this.#head?.fill(0)
    return {
      range: this.#bad ? undefined : this.#range,
      sha256: new Uint8Array(this.#hash.digest()),
    }
  }
}

/** Zero plaintext chunks and free their memory now, not at the next collection. */
export function release(chunks: readonly Uint8Array[]): void {
  for (const c of chunks) {
    c.fill(0)
    const ab = c.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer }
    if (c.byteOffset === 0 && c.byteLength === ab.byteLength && ab.transfer) ab.transfer(0)
  }
}
