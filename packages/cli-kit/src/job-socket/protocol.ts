/**
 * A job socket's wire format (executor ADR 0035, pi-node ADR 0107): frames of a 4-byte
 * big-endian length and that many bytes of UTF-8 JSON, over a unix socket in the data folder.
 * The CLI sends one request; the daemon answers with `stage` and `progress` frames, then one
 * `result` or `error` frame, and closes. Light on purpose: a CLI loads this before (and
 * instead of) its node.
 */
import { join } from 'node:path'

/** The socket and the token file of a job socket `name` (`run`, `seal`) in a data folder. */
export function jobSocketPaths(dataDir: string, name: string): { socket: string; token: string } {
  return { socket: join(dataDir, `${name}.sock`), token: join(dataDir, `${name}.token`) }
}

/** The daemon's frames. */
export type JobAnswer =
  | { readonly type: 'stage'; readonly event: Record<string, unknown> }
  | { readonly type: 'progress'; readonly progress: Record<string, unknown> }
  | { readonly type: 'result'; readonly result: Record<string, unknown> }
  | {
      readonly type: 'error'
      readonly code: string
      readonly shortMessage: string
      readonly details?: Record<string, unknown>
      readonly hint?: string
    }

/** One frame: length (u32 BE) and the JSON; bigints as decimal strings, bytes as 0x hex. */
export function encodeFrame(value: unknown): Buffer {
  const json = Buffer.from(
    JSON.stringify(value, (_k, v: unknown) =>
      typeof v === 'bigint'
        ? v.toString()
        : v instanceof Uint8Array
          ? `0x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`
          : v,
    ),
  )
  const head = Buffer.alloc(4)
  head.writeUInt32BE(json.byteLength)
  return Buffer.concat([head, json])
}

/**
 * Splits a byte stream into frames. `push` returns the complete frames so far, or throws
 * `FrameError` for a frame over `max` bytes or one that is not JSON.
 */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0)
  readonly #max: number
  constructor(max: number) {
    this.#max = max
  }
  push(chunk: Buffer): unknown[] {
    this.#buf = this.#buf.byteLength === 0 ? chunk : Buffer.concat([this.#buf, chunk])
    const out: unknown[] = []
    while (this.#buf.byteLength >= 4) {
      const len = this.#buf.readUInt32BE(0)
      if (len > this.#max) throw new FrameError('too-large', { bytes: len, maxBytes: this.#max })
      if (this.#buf.byteLength < 4 + len) {
        break
      }
      const body = this.#buf.subarray(4, 4 + len)
      this.#buf = this.#buf.subarray(4 + len)
      try {
        out.push(JSON.parse(body.toString('utf8')))
      } catch {
        throw new FrameError('malformed', { error: 'not JSON' })
      }
    }
    return out
  }
}

export class FrameError extends Error {
  readonly reason: string
  readonly details: Record<string, unknown>
  constructor(reason: string, details: Record<string, unknown>) {
    super(reason)
    this.reason = reason
    this.details = details
  }
}
