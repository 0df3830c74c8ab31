/**
 * The run socket's wire format (ADR 0035): frames of a 4-byte big-endian length and that many
 * bytes of UTF-8 JSON, over a unix socket in the data folder. The CLI sends one request; the
 * daemon answers with `stage` and `progress` frames, then one `result` or `error` frame, and
 * closes. Light on purpose: the CLI loads this before (and instead of) libp2p.
 */
import { join } from 'node:path'

/** Wire version; a request of another one is refused (`reason: 'version'`). */
export const RUN_SOCKET_VERSION = 1
/** Largest request frame the daemon reads (a CID, a few flags, program arguments). */
export const MAX_REQUEST_BYTES = 64 * 1024
/** Largest answer frame the CLI reads (a 16 MiB result as hex, with room). */
export const MAX_ANSWER_BYTES = 48 * 1024 * 1024

/** The socket and the token file of a data folder. */
export function runSocketPaths(dataDir: string): { socket: string; token: string } {
  return { socket: join(dataDir, 'run.sock'), token: join(dataDir, 'run.token') }
}

/** What `executor-node run` asks: the CID and `runCapsule`'s options (JSON: fee as a string). */
export interface RunRequest {
  readonly v: number
  /** The daemon's token (`run.token`, 0600): only the data folder's owner can read it. */
  readonly token: string
  readonly cid: string
  readonly options: {
    readonly fast?: boolean
    readonly fallbackToChain?: boolean
    readonly keyguardAddrs?: readonly string[]
    /** Wei (a bigint travels as its decimal string). */
    readonly fee?: bigint | string
    readonly args?: readonly string[]
    readonly fetchTimeoutMs?: number
  }
}

/** The daemon's frames. */
export type RunAnswer =
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
