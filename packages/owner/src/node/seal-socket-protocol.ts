/**
 * The seal socket (ADR 0107): `pi-node seal` hands a data seal to the running `pi-node serve`
 * over `<data-dir>/seal.sock` (`@digicap/cli-kit/job-socket`'s frames, token and lock). The
 * daemon cannot name the CLI's file (its unit hides `/home` and the CLI's `/tmp`), so the CLI
 * opens it and names its descriptor: the daemon opens `/proc/<pid>/fd/<fd>`, which resolves
 * through the CLI's mounts and only for the same uid, and checks the device and inode the CLI
 * saw. Light: what the CLI loads before it decides to seal itself.
 */
import { DigicapError } from '@digicap/capsule-core/light'

/** Wire version; a request of another one is refused (`reason: 'version'`). */
export const SEAL_SOCKET_VERSION = 1
/** The socket's name: `seal.sock`, `seal.token`. */
export const SEAL_SOCKET_NAME = 'seal'
/** Largest request frame the daemon reads (a policy expression, receivers, a few numbers). */
export const MAX_SEAL_REQUEST_BYTES = 64 * 1024
/** Largest answer frame the CLI reads (a seal's result is a few hundred bytes). */
export const MAX_SEAL_ANSWER_BYTES = 1024 * 1024

/** The CLI's open input: its process, the descriptor, and what `fstat` said of it. */
export interface SealInputRef {
  readonly pid: number
  readonly fd: number
  /** Device and inode as decimal strings (`fstat` with bigints). */
  readonly dev: string
  readonly ino: string
}

/** What `pi-node seal` asks (beside `v` and `token`): a data capsule of the open input. */
export interface SealRequest {
  readonly input: SealInputRef
  readonly options: {
    readonly policy: string
    /** X25519 keys as 0x hex, each with its peer id if known. */
    readonly receivers?: readonly { readonly publicKey: string; readonly peerId?: string }[]
    readonly memoryLimit?: number
    readonly timeLimit?: number
    readonly announceTimeoutMs?: number
  }
}

/**
 * The seal socket refused the request, or the daemon went away before its answer
 * (`details.reason`: `malformed`, `too-large`, `version`, `token`, `busy`, `timeout`,
 * `stopping`, `input-unreadable`, `input-changed`, `closed`).
 */
export class SealSocketError extends DigicapError {
  override name = 'SealSocketError'
  constructor(
    shortMessage: string,
    options: { details?: Record<string, unknown>; hint?: string } = {},
  ) {
    super('SEAL_SOCKET', shortMessage, options)
  }
}
