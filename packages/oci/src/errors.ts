/**
 * Typed errors of `@digicap/oci`. Every class has a stable `code`; messages and details carry
 * digests, sizes, media types and protocol names, never key material or plaintext.
 */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

/**
 * Bytes that do not parse as what they claim to be: an image layout, a manifest, a descriptor,
 * an annotation (base64, JSON), layer options, a JWE, a Digicap payload, a keyprovider message.
 */
export class OciFormatError extends DigicapError {
  override name = 'OciFormatError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('OCI_FORMAT', shortMessage, options)
  }
}

/**
 * Bytes that parse but are not the ones that were sealed: a layer whose HMAC does not match,
 * a blob whose digest or size differs from its descriptor, a decrypted layer whose digest
 * differs from the one in its private options. `details.reason` says which check failed.
 */
export class OciIntegrityError extends DigicapError {
  override name = 'OciIntegrityError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('OCI_INTEGRITY', shortMessage, options)
  }
}

/** A blob ended before the size its descriptor gives (an interrupted download or a cut file). */
export class OciTruncatedError extends DigicapError {
  override name = 'OciTruncatedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('OCI_TRUNCATED', shortMessage, options)
  }
}

/**
 * No layer options could be unwrapped: no recipient of a protocol we hold a key for, no key
 * given, or every wrapped copy refused every key. `details.tried` lists the protocols tried.
 */
export class OciKeyError extends DigicapError {
  override name = 'OciKeyError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('OCI_KEY', shortMessage, options)
  }
}

/** An input over a documented limit (annotation length, recipients, layer size, JSON size). */
export class OciLimitError extends DigicapError {
  override name = 'OciLimitError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('OCI_LIMIT', shortMessage, options)
  }
}

/** A layer or image feature this package does not support (cipher, media type, JWE `zip`). */
export class OciUnsupportedError extends DigicapError {
  override name = 'OciUnsupportedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('OCI_UNSUPPORTED', shortMessage, options)
  }
}

/**
 * A distribution-spec request the registry endpoint refuses, or a blob source that failed
 * (`details.registryCode`: the spec's error code, e.g. `BLOB_UNKNOWN`; `details.status`: the
 * HTTP status). The endpoint answers it as `{"errors":[{"code","message","detail"}]}`.
 */
export class OciRegistryError extends DigicapError {
  override name = 'OciRegistryError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('OCI_REGISTRY', shortMessage, options)
  }
}

/**
 * An image whose configuration asks for more than an unprivileged, offline process: the root
 * user, exposed ports, volumes (`details.field` names the field). Refused before anything runs.
 */
export class OciPrivilegeError extends DigicapError {
  override name = 'OciPrivilegeError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('OCI_PRIVILEGE', shortMessage, options)
  }
}
