/**
 * The run socket's wire format (ADR 0035): frames of a 4-byte big-endian length and that many
 * bytes of UTF-8 JSON, over a unix socket in the data folder. The CLI sends one request; the
 * daemon answers with `stage` and `progress` frames, then one `result` or `error` frame, and
 * closes. Light on purpose: the CLI loads this before (and instead of) libp2p.
 */
import { type JobAnswer, jobSocketPaths } from '@digicap/cli-kit/job-socket'

export { encodeFrame, FrameError, FrameReader } from '@digicap/cli-kit/job-socket'

/** Wire version; a request of another one is refused (`reason: 'version'`). */
export const RUN_SOCKET_VERSION = 1
/** Largest request frame the daemon reads (a CID, a few flags, program arguments). */
export const MAX_REQUEST_BYTES = 64 * 1024
/** Largest answer frame the CLI reads (a 16 MiB result as hex, with room). */
export const MAX_ANSWER_BYTES = 48 * 1024 * 1024

/** The socket and the token file of a data folder. */
export function runSocketPaths(dataDir: string): { socket: string; token: string } {
  return jobSocketPaths(dataDir, 'run')
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
export type RunAnswer = JobAnswer
