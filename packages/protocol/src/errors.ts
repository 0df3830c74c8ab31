/**
 * Typed errors of the Digicap wire protocols. Every error this package throws across its
 * boundary is one of these (or an `InvalidArgumentError` from `@digicap/capsule-core` for a
 * caller's own bad argument). Messages carry ids, lengths and field names, never key bytes.
 */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/** Stable codes of the wire errors. A code never changes meaning once published. */
export type WireErrorCode =
  | 'WIRE_FORMAT'
  | 'WIRE_VERSION'
  | 'WIRE_TOO_LARGE'
  | 'WIRE_TRUNCATED'
  | 'WIRE_TIMEOUT'
  | 'WIRE_ABORTED'
  | 'WIRE_STREAM'
  | 'WIRE_REMOTE'
  | 'WIRE_SIGNATURE'
  | 'RETRY_EXHAUSTED'
  | 'HANDLER_FAILED'
  | 'RESULT_INVALID'
  | 'RESULT_HEADER_INVALID'
  | 'RESULT_REFUSED'
  | 'RECEIVER_STOPPED'
  | 'REPLAY_STORE'

/**
 * The bytes are not a well-formed message: bad varint, bad or non-canonical CBOR, wrong
 * type tag, a missing, unknown or mistyped field, or a field of the wrong length.
 * `details.field` names the field when one is at fault.
 */
export class WireFormatError extends DigicapError {
  override name = 'WireFormatError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('WIRE_FORMAT', shortMessage, options)
  }
}

/** The message declares a version (`v`) this library does not speak. */
export class WireVersionError extends DigicapError {
  override name = 'WireVersionError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('WIRE_VERSION', shortMessage, options)
  }
}

/** A frame (or the bytes buffered for it) is over the protocol's maximum frame size. */
export class WireTooLargeError extends DigicapError {
  override name = 'WireTooLargeError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('WIRE_TOO_LARGE', shortMessage, options)
  }
}

/** The stream ended before a whole frame arrived (or before any frame). */
export class WireTruncatedError extends DigicapError {
  override name = 'WireTruncatedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('WIRE_TRUNCATED', shortMessage, options)
  }
}

/** The exchange did not finish within its time limit. */
export class WireTimeoutError extends DigicapError {
  override name = 'WireTimeoutError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('WIRE_TIMEOUT', shortMessage, options)
  }
}

/** The caller's `AbortSignal` fired. */
export class WireAbortedError extends DigicapError {
  override name = 'WireAbortedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('WIRE_ABORTED', shortMessage, options)
  }
}

/** Opening, writing to or reading from the libp2p stream failed (dial error, reset, closed). */
export class WireStreamError extends DigicapError {
  override name = 'WireStreamError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('WIRE_STREAM', shortMessage, options)
  }
}

/** Codes a responder may put in an `error` reply (see SPEC.md §3.4). */
export type RemoteErrorCode =
  | 'format'
  | 'version'
  | 'too-large'
  | 'truncated'
  | 'timeout'
  | 'internal'

/**
 * The remote peer answered with an `error` reply instead of a response.
 * `remoteCode` is the peer's code; its free-text message, if any, is in `details.remoteMessage`.
 */
export class WireRemoteError extends DigicapError {
  override name = 'WireRemoteError'
  readonly remoteCode: RemoteErrorCode
  constructor(remoteCode: RemoteErrorCode, remoteMessage: string | undefined) {
    super('WIRE_REMOTE', 'The remote peer rejected the request', {
      details: remoteMessage === undefined ? { remoteCode } : { remoteCode, remoteMessage },
      hint: 'The peer could not process the message; check versions and sizes on both sides.',
    })
    this.remoteCode = remoteCode
  }
}

/** An AccessRequest signature is malformed, not canonical (high s, bad v) or unrecoverable. */
export class WireSignatureError extends DigicapError {
  override name = 'WireSignatureError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('WIRE_SIGNATURE', shortMessage, options)
  }
}

/** `retryWithBackoff` gave up: the deadline passed. The last failure is the `cause`. */
export class RetryExhaustedError extends DigicapError {
  override name = 'RetryExhaustedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RETRY_EXHAUSTED', shortMessage, options)
  }
}

/** A protocol handler threw; the peer got an `internal` error reply. The handler's error is the `cause`. */
export class HandlerFailedError extends DigicapError {
  override name = 'HandlerFailedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('HANDLER_FAILED', shortMessage, options)
  }
}

/** A received result could not be opened or fetched, or none came in time (receiver side). */
export class ResultInvalidError extends DigicapError {
  override name = 'ResultInvalidError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RESULT_INVALID', shortMessage, options)
  }
}

/**
 * The header a capsule's registered CID holds was read and is not that capsule's (SPEC §3.4.3
 * check 11): not a capsule header, not signed by the registered owner, or another capsule's.
 * A header never changes under its CID, so this is final: the receiver answers
 * `not-a-receiver`, not `busy`. `details.capsuleId`, `details.cid`, `details.why`.
 */
export class ResultHeaderInvalidError extends DigicapError {
  override name = 'ResultHeaderInvalidError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RESULT_HEADER_INVALID', shortMessage, options)
  }
}

/**
 * The receiver refused a result (receiver side: reported on its `error` event; executor side:
 * a final refusal). `details.reasonCode` is the wire reason (`bad-signature`,
 * `wrong-executor`, `replayed`, …); `details.executor` the address that signed, if any.
 */
export class ResultRefusedError extends DigicapError {
  override name = 'ResultRefusedError'
  readonly reasonCode: string
  constructor(reasonCode: string, options: DigicapErrorOptions = {}) {
    super('RESULT_REFUSED', `Result refused: ${reasonCode}`, {
      ...options,
      details: { reasonCode, ...options.details },
    })
    this.reasonCode = reasonCode
  }
}

/** The result receiver stopped while a `next()` was waiting. */
export class ResultReceiverStoppedError extends DigicapError {
  override name = 'ResultReceiverStoppedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('RECEIVER_STOPPED', shortMessage, options)
  }
}

/**
 * A result receiver's replay memory cannot be loaded (`fileResultReplays`: the file is
 * unreadable or not one it wrote; `details.path`, `details.why`). Refusing to start beats
 * silently forgetting every spent id.
 */
export class ResultReplayStoreError extends DigicapError {
  override name = 'ResultReplayStoreError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('REPLAY_STORE', shortMessage, options)
  }
}
