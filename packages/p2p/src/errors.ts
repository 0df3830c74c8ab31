/**
 * Typed errors of `@digicap/p2p`. Every error crossing the package boundary is a
 * `DigicapError` with one of these stable codes.
 */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/** An announcement is not one canonical CBOR map of the expected shape. */
export class AnnouncementFormatError extends DigicapError {
  override name = 'AnnouncementFormatError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ANNOUNCEMENT_FORMAT', shortMessage, options)
  }
}

/** An announcement declares a version (`v`) this library does not speak. */
export class AnnouncementVersionError extends DigicapError {
  override name = 'AnnouncementVersionError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ANNOUNCEMENT_VERSION', shortMessage, options)
  }
}

/** An announcement is larger than {@link MAX_ANNOUNCEMENT_BYTES}. */
export class AnnouncementTooLargeError extends DigicapError {
  override name = 'AnnouncementTooLargeError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ANNOUNCEMENT_TOO_LARGE', shortMessage, options)
  }
}

/** Nobody subscribed to the announcement topic before the timeout. */
export class NoSubscribersError extends DigicapError {
  override name = 'NoSubscribersError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('ANNOUNCE_NO_SUBSCRIBERS', shortMessage, options)
  }
}

/** A CID string that does not parse. */
export class InvalidCidError extends DigicapError {
  override name = 'InvalidCidError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('INVALID_CID', shortMessage, options)
  }
}

/** The node could not be created or started (bad key, bad address, storage failure). */
export class NodeStartError extends DigicapError {
  override name = 'NodeStartError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('P2P_NODE_START', shortMessage, options)
  }
}

/** A store operation failed (missing content, aborted fetch, storage failure). */
export class CapsuleStoreError extends DigicapError {
  override name = 'CapsuleStoreError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_STORE', shortMessage, options)
  }
}

/** Announcing or subscribing on a node started without gossipsub (`pubsub: false`). */
export class PubsubDisabledError extends DigicapError {
  override name = 'PubsubDisabledError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('P2P_PUBSUB_DISABLED', shortMessage, options)
  }
}

/**
 * A peer let a send time out: no stream taken, no byte read, or its connection's backlog not
 * drained within bitswap's send timeout. Its connections are closed with this error (ADR 0066).
 */
export class PeerNotReadingError extends DigicapError {
  override name = 'PeerNotReadingError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('P2P_PEER_NOT_READING', shortMessage, options)
  }
}

/**
 * A peer sent bitswap messages faster than the per-connection budget allows (ADR 0090): its
 * connection is closed with this error before bitswap reads the messages.
 */
export class PeerFloodingError extends DigicapError {
  override name = 'PeerFloodingError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('P2P_PEER_FLOODING', shortMessage, options)
  }
}
