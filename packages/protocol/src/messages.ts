/**
 * The messages of the three Digicap protocols and their strict codecs (SPEC.md §3).
 *
 * Every `encodeX` validates its input by decoding what it wrote, so a codec can never emit
 * bytes its own decoder rejects; every `decodeX` is strict (canonical CBOR, exact field set,
 * exact lengths) and throws only {@link WireFormatError} or {@link WireVersionError}.
 */
import {
  abiWord,
  DigicapError,
  equalBytes,
  HPKE_OVERHEAD,
  InvalidArgumentError,
} from '@digicap/capsule-core'
import { keccak_256 } from '@noble/hashes/sha3.js'
import {
  checkFields,
  decodeEnvelope,
  encodeCanonical,
  MAX_U64,
  readBool,
  readBytes,
  readText,
  readUint,
  u64,
  WIRE_VERSION,
  type WireMap,
} from './cbor.ts'
import { type RemoteErrorCode, WireFormatError } from './errors.ts'

/** Length of grant, capsule and run ids, ephemeral keys, measurements and nonces. */
export const ID_LENGTH = 32
/** Length of an Ethereum address. */
export const ADDRESS_LENGTH = 20
/** Length of an `r || s || v` secp256k1 signature. */
export const SIGNATURE_LENGTH = 65
/** Length of a capsule data key. */
export const DATA_KEY_LENGTH = 32
/** Length of `KeyRelease.hpke`: enc (32) + sealed 32-byte data key (32) + tag (16). */
export const KEY_RELEASE_HPKE_LENGTH = HPKE_OVERHEAD + DATA_KEY_LENGTH
/** Largest UTF-8 length of free text on the wire (refusal reasons, error messages). */
export const MAX_TEXT_BYTES = 256
/** Largest `AccessRequest.jobParams`, in bytes. */
export const MAX_JOB_PARAMS_BYTES = 4096
/** Largest uint256. */
export const MAX_U256 = (1n << 256n) - 1n
/** Largest `retryAfterMs` a refusal may carry (one hour). */
export const MAX_RETRY_AFTER_MS = 3_600_000

/** Type tags (`t`) of every message. */
export const MESSAGE_TYPES = [
  'key-release',
  'release-ack',
  'access-request',
  'access-response',
  'result-delivery',
  'result-ack',
  'error',
] as const
/** A message type tag. */
export type MessageType = (typeof MESSAGE_TYPES)[number]

// ---------------------------------------------------------------------------------------------
// key-release

/** Keyguard → executor: the data key sealed to the grant's ephemeral X25519 key. */
export interface KeyRelease {
  /** The grant this release answers, 32 bytes. Also the HPKE AAD. */
  grantId: Uint8Array
  /** The capsule whose data key this is, 32 bytes. */
  capsuleId: Uint8Array
  /** HPKE `enc || ciphertext` of the 32-byte data key, 80 bytes. */
  hpke: Uint8Array
  /** True when the grant came from the fast path (AccessRequest) rather than the chain. */
  fastPath: boolean
}

/** Executor's answer to a {@link KeyRelease}. */
export type ReleaseAckStatus = 'ok' | 'unknown-grant' | 'open-failed'
/** Executor → keyguard acknowledgement of a {@link KeyRelease}. */
export interface ReleaseAck {
  grantId: Uint8Array
  status: ReleaseAckStatus
}
/** Every {@link ReleaseAckStatus}. */
export const RELEASE_ACK_STATUSES: readonly ReleaseAckStatus[] = [
  'ok',
  'unknown-grant',
  'open-failed',
]

// ---------------------------------------------------------------------------------------------
// fast-path

/**
 * Executor → keyguard: a signed request for a capsule's data key (fast path). The signed
 * fields are exactly the AccessController's EIP-712 `AccessRequest` struct (SPEC.md §4), so the
 * keyguard can log the grant on chain with `recordFastPathGrant(req, jobParams, signature)`.
 */
export interface AccessRequest {
  capsuleId: Uint8Array
  /** The executor's Ethereum address, 20 bytes; must be the signer. */
  executor: Uint8Array
  /** The executor's per-run X25519 public key, 32 bytes. */
  ephemeralKey: Uint8Array
  /** The run environment measurement (as bound into the TPM quote), 32 bytes. */
  measurement: Uint8Array
  /** keccak256 of `jobParams`, 32 bytes. */
  jobParamsHash: Uint8Array
  /** Wei taken from the executor's deposit into escrow (uint256). */
  fee: bigint
  /** The EIP-712 `uint256 nonce` as 32 big-endian bytes; accepted once per executor. */
  nonce: Uint8Array
  /** Unix time in seconds after which the request is void (u64). */
  expiry: bigint
  /** The job parameters the policy sees (at most {@link MAX_JOB_PARAMS_BYTES}); not signed directly, bound by `jobParamsHash`. */
  jobParams: Uint8Array
  /** EIP-712 signature `r || s || v` (v = 27 or 28, low s), 65 bytes. */
  signature: Uint8Array
}

/** Why a keyguard refused an {@link AccessRequest}. */
export type RefusalCode =
  | 'replayed'
  | 'expired'
  | 'bad-signature'
  | 'policy-denied'
  | 'rate-limited'
  | 'busy'
  | 'unknown-capsule'
  /** The capsule's policy requires `attested()` and the executor's TPM evidence was refused. */
  | 'not-attested'
/** Every {@link RefusalCode}. */
export const REFUSAL_CODES: readonly RefusalCode[] = [
  'replayed',
  'expired',
  'bad-signature',
  'policy-denied',
  'rate-limited',
  'busy',
  'unknown-capsule',
  'not-attested',
]

/** Keyguard → executor: the answer to an {@link AccessRequest}. */
export type AccessResponse =
  | {
      status: 'granted'
      /** The grant id the keyguard assigned (and will log on chain). */
      grantId: Uint8Array
      /** The key release itself, inline, when the keyguard sends it in the same exchange. */
      keyRelease?: KeyRelease
    }
  | {
      status: 'refused'
      reasonCode: RefusalCode
      /** Free text, at most 256 UTF-8 bytes (e.g. the policy's revert reason). Untrusted. */
      reason?: string
      /** For `rate-limited` and `busy`: when to try again, in milliseconds. */
      retryAfterMs?: number
    }

// ---------------------------------------------------------------------------------------------
// error reply

/** Responder → requester when the request could not be processed at all. */
export interface ErrorReply {
  code: RemoteErrorCode
  /** Free text, at most 256 UTF-8 bytes. Untrusted. */
  message?: string
}
/** Every {@link RemoteErrorCode}. */
export const REMOTE_ERROR_CODES: readonly RemoteErrorCode[] = [
  'format',
  'version',
  'too-large',
  'truncated',
  'timeout',
  'internal',
]

// ---------------------------------------------------------------------------------------------
// helpers

/** @internal Checks the `t` of a decoded envelope. */
export function expectType(type: string, expected: MessageType): void {
  if (type !== expected) {
    throw new WireFormatError(`Expected a ${expected} message`, {
      details: { field: 't', reason: 'unexpected-type', expected, got: type.slice(0, 32) },
    })
  }
}

/** @internal Encodes a map and proves the decoder takes it back. */
export function encodeChecked<T>(
  name: string,
  build: () => WireMap,
  decode: (bytes: Uint8Array) => T,
): Uint8Array {
  let bytes: Uint8Array
  try {
    bytes = encodeCanonical(build())
    decode(bytes)
  } catch (cause) {
    const details = cause instanceof DigicapError ? { ...cause.details } : {}
    throw new InvalidArgumentError(`Cannot encode ${name}: invalid field`, { details, cause })
  }
  return bytes
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

// ---------------------------------------------------------------------------------------------
// KeyRelease

function keyReleaseMap(m: KeyRelease): WireMap {
  return {
    v: WIRE_VERSION,
    t: 'key-release',
    grantId: m.grantId,
    capsuleId: m.capsuleId,
    hpke: m.hpke,
    fastPath: m.fastPath,
  }
}

function keyReleaseFromMap(map: WireMap): KeyRelease {
  const type = 'key-release'
  checkFields(map, type, ['grantId', 'capsuleId', 'hpke', 'fastPath'])
  return {
    grantId: readBytes(map, type, 'grantId', ID_LENGTH),
    capsuleId: readBytes(map, type, 'capsuleId', ID_LENGTH),
    hpke: readBytes(map, type, 'hpke', KEY_RELEASE_HPKE_LENGTH),
    fastPath: readBool(map, type, 'fastPath'),
  }
}

/**
 * Encodes a {@link KeyRelease} body (canonical CBOR, without the length prefix).
 *
 * @throws {InvalidArgumentError} if a field has the wrong type or length.
 * @example
 * ```ts
 * const sealed = await hpkeSeal(grant.ephemeralKey, dataKey, grantId)
 * const body = encodeKeyRelease({ grantId, capsuleId, hpke: encodeHpkeSealed(sealed), fastPath: false })
 * ```
 */
export function encodeKeyRelease(message: KeyRelease): Uint8Array {
  return encodeChecked('KeyRelease', () => keyReleaseMap(message), decodeKeyRelease)
}

/**
 * Decodes a {@link KeyRelease} body.
 *
 * @throws {WireFormatError} for malformed, non-canonical or mistyped input.
 * @throws {WireVersionError} for a version other than 1.
 */
export function decodeKeyRelease(body: Uint8Array): KeyRelease {
  const { type, map } = decodeEnvelope(body)
  expectType(type, 'key-release')
  return keyReleaseFromMap(map)
}

/**
 * Encodes a {@link ReleaseAck} body.
 *
 * @throws {InvalidArgumentError} if a field has the wrong type, length or value.
 */
export function encodeReleaseAck(message: ReleaseAck): Uint8Array {
  return encodeChecked(
    'ReleaseAck',
    () => ({ v: WIRE_VERSION, t: 'release-ack', grantId: message.grantId, status: message.status }),
    decodeReleaseAck,
  )
}

/**
 * Decodes a {@link ReleaseAck} body.
 *
 * @throws {WireFormatError} for malformed, non-canonical or mistyped input.
 * @throws {WireVersionError} for a version other than 1.
 */
export function decodeReleaseAck(body: Uint8Array): ReleaseAck {
  const { type, map } = decodeEnvelope(body)
  expectType(type, 'release-ack')
  checkFields(map, type, ['grantId', 'status'])
  return {
    grantId: readBytes(map, type, 'grantId', ID_LENGTH),
    status: readText(map, type, 'status', { oneOf: RELEASE_ACK_STATUSES }),
  }
}

// ---------------------------------------------------------------------------------------------
// AccessRequest / AccessResponse

/**
 * Encodes an {@link AccessRequest} body.
 *
 * @throws {InvalidArgumentError} if a field has the wrong type, length or range.
 */
export function encodeAccessRequest(message: AccessRequest): Uint8Array {
  return encodeChecked(
    'AccessRequest',
    () => ({
      v: WIRE_VERSION,
      t: 'access-request',
      capsuleId: message.capsuleId,
      executor: message.executor,
      ephemeralKey: message.ephemeralKey,
      measurement: message.measurement,
      jobParamsHash: message.jobParamsHash,
      fee: typeof message.fee === 'bigint' ? uint256Bytes(message.fee) : undefined,
      nonce: message.nonce,
      expiry: typeof message.expiry === 'bigint' ? u64(message.expiry) : undefined,
      jobParams: message.jobParams,
      signature: message.signature,
    }),
    decodeAccessRequest,
  )
}

/** 32 big-endian bytes of a uint256 (`undefined` when out of range, so the encoder refuses it). */
function uint256Bytes(n: bigint): Uint8Array | undefined {
  return n < 0n || n > MAX_U256 ? undefined : abiWord(n)
}

/**
 * Decodes an {@link AccessRequest} body. Checks that `keccak256(jobParams) == jobParamsHash`;
 * does not check the signature: call {@link recoverAccessRequestSigner} for that.
 *
 * @throws {WireFormatError} for malformed, non-canonical or mistyped input.
 * @throws {WireVersionError} for a version other than 1.
 */
export function decodeAccessRequest(body: Uint8Array): AccessRequest {
  const { type, map } = decodeEnvelope(body)
  expectType(type, 'access-request')
  checkFields(map, type, [
    'capsuleId',
    'executor',
    'ephemeralKey',
    'measurement',
    'jobParamsHash',
    'fee',
    'nonce',
    'expiry',
    'jobParams',
    'signature',
  ])
  let fee = 0n
  for (const b of readBytes(map, type, 'fee', ID_LENGTH)) fee = (fee << 8n) | BigInt(b)
  const out: AccessRequest = {
    capsuleId: readBytes(map, type, 'capsuleId', ID_LENGTH),
    executor: readBytes(map, type, 'executor', ADDRESS_LENGTH),
    ephemeralKey: readBytes(map, type, 'ephemeralKey', ID_LENGTH),
    measurement: readBytes(map, type, 'measurement', ID_LENGTH),
    jobParamsHash: readBytes(map, type, 'jobParamsHash', ID_LENGTH),
    fee,
    nonce: readBytes(map, type, 'nonce', ID_LENGTH),
    expiry: readUint(map, type, 'expiry', MAX_U64),
    jobParams: readBytes(map, type, 'jobParams', { min: 0, max: MAX_JOB_PARAMS_BYTES }),
    signature: readBytes(map, type, 'signature', SIGNATURE_LENGTH),
  }
  const hash = keccak_256(out.jobParams)
  if (!hash.every((b, i) => b === out.jobParamsHash[i])) {
    throw new WireFormatError('AccessRequest jobParamsHash is not keccak256(jobParams)', {
      details: { type, field: 'jobParamsHash', reason: 'mismatch' },
    })
  }
  return out
}

/**
 * Encodes an {@link AccessResponse} body.
 *
 * @throws {InvalidArgumentError} if a field has the wrong type, length or value, or an inline
 * `keyRelease` does not match `grantId` or is not marked `fastPath`.
 */
export function encodeAccessResponse(message: AccessResponse): Uint8Array {
  return encodeChecked(
    'AccessResponse',
    () => {
      if (!isObject(message)) return {}
      if (message.status === 'granted') {
        const map: WireMap = {
          v: WIRE_VERSION,
          t: 'access-response',
          status: 'granted',
          grantId: message.grantId,
        }
        if (message.keyRelease !== undefined) map.keyRelease = keyReleaseMap(message.keyRelease)
        return map
      }
      const map: WireMap = {
        v: WIRE_VERSION,
        t: 'access-response',
        status: message.status,
        reasonCode: message.reasonCode,
      }
      if (message.reason !== undefined) map.reason = message.reason
      if (message.retryAfterMs !== undefined) map.retryAfterMs = message.retryAfterMs
      return map
    },
    decodeAccessResponse,
  )
}

/**
 * Decodes an {@link AccessResponse} body.
 *
 * @throws {WireFormatError} for malformed, non-canonical or mistyped input, or an inline key
 * release whose grant id differs from the response's or that is not marked `fastPath`.
 * @throws {WireVersionError} for a version other than 1 (also inside `keyRelease`).
 */
export function decodeAccessResponse(body: Uint8Array): AccessResponse {
  const { type, map } = decodeEnvelope(body)
  expectType(type, 'access-response')
  const status = readText(map, type, 'status', { oneOf: ['granted', 'refused'] as const })
  if (status === 'granted') {
    checkFields(map, type, ['status', 'grantId'], ['keyRelease'])
    const grantId = readBytes(map, type, 'grantId', ID_LENGTH)
    if (!Object.hasOwn(map, 'keyRelease')) return { status, grantId }
    const inner = map.keyRelease
    if (!isObject(inner) || inner instanceof Uint8Array || Array.isArray(inner)) {
      throw new WireFormatError('Field keyRelease of access-response is not a map', {
        details: { type, field: 'keyRelease', reason: 'type' },
      })
    }
    const innerMap = inner as WireMap
    expectType(decodeEnvelope(encodeCanonical(innerMap)).type, 'key-release')
    const keyRelease = keyReleaseFromMap(innerMap)
    if (!equalBytes(keyRelease.grantId, grantId) || !keyRelease.fastPath) {
      throw new WireFormatError('Inline key release does not belong to this fast-path grant', {
        details: { type, field: 'keyRelease', reason: 'mismatch' },
      })
    }
    return { status, grantId, keyRelease }
  }
  checkFields(map, type, ['status', 'reasonCode'], ['reason', 'retryAfterMs'])
  const out: AccessResponse = {
    status,
    reasonCode: readText(map, type, 'reasonCode', { oneOf: REFUSAL_CODES }),
  }
  if (Object.hasOwn(map, 'reason')) {
    out.reason = readText(map, type, 'reason', { maxBytes: MAX_TEXT_BYTES })
  }
  if (Object.hasOwn(map, 'retryAfterMs')) {
    out.retryAfterMs = Number(readUint(map, type, 'retryAfterMs', BigInt(MAX_RETRY_AFTER_MS)))
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// ErrorReply

/**
 * Encodes an {@link ErrorReply} body.
 *
 * @throws {InvalidArgumentError} for an unknown code or a message over 256 bytes.
 */
export function encodeErrorReply(message: ErrorReply): Uint8Array {
  return encodeChecked(
    'ErrorReply',
    () => {
      const map: WireMap = { v: WIRE_VERSION, t: 'error', code: message.code }
      if (message.message !== undefined) map.message = message.message
      return map
    },
    decodeErrorReply,
  )
}

/**
 * Decodes an {@link ErrorReply} body.
 *
 * @throws {WireFormatError} for malformed, non-canonical or mistyped input.
 * @throws {WireVersionError} for a version other than 1.
 */
export function decodeErrorReply(body: Uint8Array): ErrorReply {
  const { type, map } = decodeEnvelope(body)
  expectType(type, 'error')
  checkFields(map, type, ['code'], ['message'])
  const out: ErrorReply = { code: readText(map, type, 'code', { oneOf: REMOTE_ERROR_CODES }) }
  if (Object.hasOwn(map, 'message')) {
    out.message = readText(map, type, 'message', { maxBytes: MAX_TEXT_BYTES })
  }
  return out
}
