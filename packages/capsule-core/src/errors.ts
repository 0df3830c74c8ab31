/**
 * Typed errors shared by every Digicap package.
 *
 * Modelled on viem's `BaseError`: a short message for humans, structured `details`, a
 * `hint` saying what to do next, a stable `code` for programs, and the `cause` chain.
 * Messages never carry key material: callers pass lengths, offsets and ids, not bytes.
 */

/** Stable, machine-readable error codes. A code never changes meaning once published. */
export type DigicapErrorCode =
  | 'INVALID_ARGUMENT'
  | 'CAPSULE_FORMAT'
  | 'CAPSULE_VERSION'
  | 'CAPSULE_TRUNCATED'
  | 'CAPSULE_INTEGRITY'
  | 'CAPSULE_SIGNATURE'
  | 'CAPSULE_KEY'
  | 'CAPSULE_LIMIT'
  | 'HPKE'
  | 'WIRE_FORMAT'
  | 'BUNDLE_FORMAT'
  | (string & {})

export interface DigicapErrorOptions {
  /** Structured, non-secret facts about the failure (offsets, sizes, ids). */
  details?: Record<string, unknown> | undefined
  /** What the caller can do about it. */
  hint?: string | undefined
  /** The underlying error, if any. */
  cause?: unknown
}

/**
 * Base class of every error a Digicap package throws across its boundary.
 *
 * @example
 * ```ts
 * try { await openCapsule(bytes, { dataKey }) }
 * catch (err) {
 *   if (err instanceof DigicapError) console.error(err.code, err.shortMessage, err.hint)
 * }
 * ```
 */
export class DigicapError extends Error {
  override name = 'DigicapError'
  readonly code: DigicapErrorCode
  readonly shortMessage: string
  readonly details: Readonly<Record<string, unknown>>
  readonly hint: string | undefined

  constructor(code: DigicapErrorCode, shortMessage: string, options: DigicapErrorOptions = {}) {
    const lines = [shortMessage]
    const details = options.details ?? {}
    const detailText = Object.entries(details)
      .map(([k, v]) => `${k}=${formatDetail(v)}`)
      .join(', ')
    if (detailText) lines.push(`Details: ${detailText}`)
    if (options.hint) lines.push(`Hint: ${options.hint}`)
    super(lines.join('\n'), options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.shortMessage = shortMessage
    this.details = Object.freeze({ ...details })
    this.hint = options.hint
  }
}

function formatDetail(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`
  if (v instanceof Uint8Array) return `<${v.length} bytes>`
  if (typeof v === 'string') return JSON.stringify(v)
  try {
    return JSON.stringify(v) ?? String(v)
  } catch {
    return String(v)
  }
}

/** A caller passed a value of the wrong type, length or range. */
export class InvalidArgumentError extends DigicapError {
  override name = 'InvalidArgumentError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('INVALID_ARGUMENT', shortMessage, options)
  }
}

/** The bytes are not a well-formed capsule (bad magic, bad CBOR, non-canonical encoding, bad field). */
export class CapsuleFormatError extends DigicapError {
  override name = 'CapsuleFormatError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_FORMAT', shortMessage, options)
  }
}

/** The capsule declares a format version this library does not read. */
export class CapsuleVersionError extends DigicapError {
  override name = 'CapsuleVersionError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_VERSION', shortMessage, options)
  }
}

/** The capsule ends before its last chunk (or inside its header). */
export class CapsuleTruncatedError extends DigicapError {
  override name = 'CapsuleTruncatedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_TRUNCATED', shortMessage, options)
  }
}

/** A chunk failed authentication: tampered, reordered, duplicated, or bound to another header. */
export class CapsuleIntegrityError extends DigicapError {
  override name = 'CapsuleIntegrityError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_INTEGRITY', shortMessage, options)
  }
}

/** The owner's EIP-712 header signature is missing, malformed or from someone else. */
export class CapsuleSignatureError extends DigicapError {
  override name = 'CapsuleSignatureError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_SIGNATURE', shortMessage, options)
  }
}

/** The data key does not open this capsule. */
export class CapsuleKeyError extends DigicapError {
  override name = 'CapsuleKeyError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_KEY', shortMessage, options)
  }
}

/** A size or count is over a hard limit of the format or of the caller's options. */
export class CapsuleLimitError extends DigicapError {
  override name = 'CapsuleLimitError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CAPSULE_LIMIT', shortMessage, options)
  }
}

/** HPKE sealing or opening failed (wrong recipient key, tampered ciphertext, wrong AAD). */
export class HpkeError extends DigicapError {
  override name = 'HpkeError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('HPKE', shortMessage, options)
  }
}

/** The bytes are not a well-formed, canonical code+data bundle (docs/bundle.md). */
export class BundleFormatError extends DigicapError {
  override name = 'BundleFormatError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('BUNDLE_FORMAT', shortMessage, options)
  }
}

/** A chain RPC did not answer, or answered with something that is not what was asked. */
export class ChainReadError extends DigicapError {
  override name = 'ChainReadError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('CHAIN_READ', shortMessage, options)
  }
}
