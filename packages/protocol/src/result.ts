/**
 * `/digicap/result/2.0.0` (SPEC.md §3.4): a run's result, HPKE-sealed to one receiver and
 * signed by the executor (EIP-712, {@link resultDigest}) over the grant, the capsule, the run,
 * the receiver's key, the measurements and the hash and size of the sealed bytes. The
 * receiver's answer says `ok` or why it refused, with a stable reason code.
 *
 * Messages of this protocol carry `v: 2`; an `error` reply keeps its own `v: 1`.
 */
import { equalBytes, HPKE_OVERHEAD, InvalidArgumentError } from '@digicap/capsule-core'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { checkFields, decodeEnvelope, readBytes, readText, readUint, type WireMap } from './cbor.ts'
import { WireFormatError } from './errors.ts'
import {
  ADDRESS_LENGTH,
  encodeChecked,
  expectType,
  ID_LENGTH,
  MAX_RETRY_AFTER_MS,
  SIGNATURE_LENGTH,
} from './messages.ts'

/** The `v` of `result-delivery` and `result-ack` (the protocol id says 2.0.0). */
export const RESULT_WIRE_VERSION = 2
/** Largest `resultSize` on the wire: 2^40 bytes (1 TiB). A receiver sets its own, lower cap. */
export const MAX_RESULT_SIZE = 2 ** 40
/** Longest `resultCid`, in bytes. */
export const MAX_CID_BYTES = 128

/** The fields of a result delivery the executor signs (everything but the bytes and the signature). */
export interface SignedResultFields {
  /** 32 random bytes the executor draws for this run (CSPRNG); never reused. */
  runId: Uint8Array
  /** The grant the run used (AccessController grant id, chain or fast path). */
  grantId: Uint8Array
  /** The capsule that ran. */
  capsuleId: Uint8Array
  /** The executor's Ethereum address, 20 bytes: the grant's executor, and the signer. */
  executor: Uint8Array
  /** The receiver's X25519 public key the result is sealed to, 32 bytes. */
  receiverKey: Uint8Array
  /** The environment measurement of the access request (bound into the grant id). */
  measurement: Uint8Array
  /** SHA-256(runtime ‖ code ‖ payload) of this run (SPEC.md §3.4.4). */
  runMeasurement: Uint8Array
  /** keccak256 of the sealed bytes `enc || ciphertext`. */
  resultHash: Uint8Array
  /** Length of the sealed bytes `enc || ciphertext` (≥ 48). */
  resultSize: number
}

/**
 * Executor → receiver: a signed, sealed result, inline (`hpke`) or stored on IPFS
 * (`resultCid`, a UnixFS file whose content is the same sealed bytes). Exactly one of the two.
 */
export type ResultDelivery = SignedResultFields & {
  /** EIP-712 signature `r || s || v` (v = 27 or 28, low s) over {@link resultDigest}. */
  signature: Uint8Array
} & ({ hpke: Uint8Array; resultCid?: never } | { resultCid: string; hpke?: never })

/** Why a receiver refused a result. */
export type ResultRefusalCode =
  | 'rate-limited'
  | 'busy'
  | 'bad-signature'
  | 'wrong-receiver'
  | 'too-large'
  | 'replayed'
  | 'unknown-grant'
  | 'wrong-executor'
  | 'wrong-capsule'
  | 'wrong-measurement'
  | 'not-a-receiver'
  | 'fetch-failed'
  | 'hash-mismatch'
  | 'open-failed'
/** Every {@link ResultRefusalCode}, in the order a receiver checks them. */
export const RESULT_REFUSAL_CODES: readonly ResultRefusalCode[] = [
  'rate-limited',
  'busy',
  'bad-signature',
  'wrong-receiver',
  'too-large',
  'replayed',
  'unknown-grant',
  'wrong-executor',
  'wrong-capsule',
  'wrong-measurement',
  'not-a-receiver',
  'fetch-failed',
  'hash-mismatch',
  'open-failed',
]
/**
 * A refusal code this implementation does not know: a newer receiver's (SPEC §3.4.5). On the
 * wire: 1–64 bytes of `a-z`, `0-9` and single inner `-`. Final unless the ack carries
 * `retryAfterMs` ({@link isRetryableResultRefusal}).
 */
export type UnknownResultRefusalCode = string & {}
/** The shape every `reasonCode` on the wire has, known or not. */
export const RESULT_REFUSAL_CODE_PATTERN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/
/** Longest `reasonCode` on the wire, bytes. */
export const MAX_RESULT_REFUSAL_CODE_BYTES = 64

/** Refusals after which the executor tries again later (the rest are final). */
export const RETRYABLE_RESULT_REFUSALS: readonly ResultRefusalCode[] = [
  'rate-limited',
  'busy',
  'unknown-grant',
  'fetch-failed',
]

/** Receiver → executor: the answer to a {@link ResultDelivery}. */
export type ResultAck =
  | { runId: Uint8Array; status: 'ok' }
  | {
      runId: Uint8Array
      status: 'refused'
      /** One of {@link RESULT_REFUSAL_CODES}, or a newer receiver's code (final unless `retryAfterMs`). */
      reasonCode: ResultRefusalCode | UnknownResultRefusalCode
      /** For retryable refusals: when to try again, ms. */
      retryAfterMs?: number
    }

/**
 * Whether the executor delivers again after this refusal (SPEC §3.4.5): a code of
 * {@link RETRYABLE_RESULT_REFUSALS}; a code this implementation does not know only when the
 * receiver said when (`retryAfterMs`). Every other refusal is final.
 *
 * @example
 * ```ts
 * if (ack.status === 'refused' && !isRetryableResultRefusal(ack)) report(ack.reasonCode)
 * ```
 */
export function isRetryableResultRefusal(refusal: {
  readonly reasonCode: string
  readonly retryAfterMs?: number | undefined
}): boolean {
  if ((RESULT_REFUSAL_CODES as readonly string[]).includes(refusal.reasonCode)) {
    return (RETRYABLE_RESULT_REFUSALS as readonly string[]).includes(refusal.reasonCode)
  }
  return refusal.retryAfterMs !== undefined
}

/** Every result-ack status. */
export const RESULT_ACK_STATUSES = ['ok', 'refused'] as const

/** CIDv0 (base58btc `Qm…`) or CIDv1 in base32 (`b…`), as IPFS tools print them. */
const CID_PATTERN = /^(?:Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{8,127})$/

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

/**
 * keccak256 of the sealed result bytes (`enc || ciphertext`): the `resultHash` field.
 *
 * @throws {InvalidArgumentError} if `sealed` is not a Uint8Array.
 */
export function resultHashOf(sealed: Uint8Array): Uint8Array {
  if (!(sealed instanceof Uint8Array)) {
    throw new InvalidArgumentError('sealed must be a Uint8Array', { details: { field: 'sealed' } })
  }
  return keccak_256(sealed)
}

/**
 * The HPKE AAD of a result sealed to a receiver: `runId || capsuleId || grantId` (96 bytes).
 *
 * @throws {InvalidArgumentError} if an id is not 32 bytes.
 */
export function resultAad(ids: {
  runId: Uint8Array
  capsuleId: Uint8Array
  grantId: Uint8Array
}): Uint8Array {
  const out = new Uint8Array(3 * ID_LENGTH)
  for (const [i, name] of (['runId', 'capsuleId', 'grantId'] as const).entries()) {
    const id = ids[name]
    if (!(id instanceof Uint8Array) || id.length !== ID_LENGTH) {
      throw new InvalidArgumentError(`${name} must be ${ID_LENGTH} bytes`, {
        details: { field: name },
      })
    }
    out.set(id, i * ID_LENGTH)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// ResultDelivery

/**
 * Encodes a {@link ResultDelivery} body (`v: 2`).
 *
 * @throws {InvalidArgumentError} if a field is wrong, both or neither of `hpke` and
 * `resultCid` are given, or an inline `hpke` does not match `resultSize` / `resultHash`.
 * @example
 * ```ts
 * const body = encodeResultDelivery({ ...fields, signature: signResult(fields, domain, key), hpke: sealed })
 * ```
 */
export function encodeResultDelivery(message: ResultDelivery): Uint8Array {
  return encodeChecked(
    'ResultDelivery',
    () => {
      if (!isObject(message)) return {}
      const map: WireMap = {
        v: RESULT_WIRE_VERSION,
        t: 'result-delivery',
        runId: message.runId,
        grantId: message.grantId,
        capsuleId: message.capsuleId,
        executor: message.executor,
        receiverKey: message.receiverKey,
        measurement: message.measurement,
        runMeasurement: message.runMeasurement,
        resultHash: message.resultHash,
        resultSize: message.resultSize,
        signature: message.signature,
      }
      if (message.hpke !== undefined) map.hpke = message.hpke
      if (message.resultCid !== undefined) map.resultCid = message.resultCid
      return map
    },
    decodeResultDelivery,
  )
}

/**
 * Decodes a {@link ResultDelivery} body. Checks the shape, and for an inline result that
 * `hpke` is `resultSize` bytes whose keccak256 is `resultHash`. Does not check the signature:
 * call {@link recoverResultSigner} for that.
 *
 * @throws {WireFormatError} for malformed, non-canonical or mistyped input, both or neither
 * of `hpke` and `resultCid`, or an inline result that does not match its size or hash.
 * @throws {WireVersionError} for a version other than 2.
 */
export function decodeResultDelivery(body: Uint8Array): ResultDelivery {
  const { type, map } = decodeEnvelope(body, RESULT_WIRE_VERSION)
  expectType(type, 'result-delivery')
  checkFields(
    map,
    type,
    [
      'runId',
      'grantId',
      'capsuleId',
      'executor',
      'receiverKey',
      'measurement',
      'runMeasurement',
      'resultHash',
      'resultSize',
      'signature',
    ],
    ['hpke', 'resultCid'],
  )
  const base = {
    runId: readBytes(map, type, 'runId', ID_LENGTH),
    grantId: readBytes(map, type, 'grantId', ID_LENGTH),
    capsuleId: readBytes(map, type, 'capsuleId', ID_LENGTH),
    executor: readBytes(map, type, 'executor', ADDRESS_LENGTH),
    receiverKey: readBytes(map, type, 'receiverKey', ID_LENGTH),
    measurement: readBytes(map, type, 'measurement', ID_LENGTH),
    runMeasurement: readBytes(map, type, 'runMeasurement', ID_LENGTH),
    resultHash: readBytes(map, type, 'resultHash', ID_LENGTH),
    resultSize: Number(readUint(map, type, 'resultSize', BigInt(MAX_RESULT_SIZE))),
    signature: readBytes(map, type, 'signature', SIGNATURE_LENGTH),
  }
  if (base.resultSize < HPKE_OVERHEAD) {
    throw new WireFormatError('resultSize is smaller than an HPKE enc and tag', {
      details: { type, field: 'resultSize', reason: 'range', min: HPKE_OVERHEAD },
    })
  }
  const hasHpke = Object.hasOwn(map, 'hpke')
  if (hasHpke === Object.hasOwn(map, 'resultCid')) {
    throw new WireFormatError('A result delivery carries exactly one of hpke and resultCid', {
      details: {
        type,
        field: hasHpke ? 'resultCid' : 'hpke',
        reason: hasHpke ? 'unknown' : 'missing',
      },
    })
  }
  if (!hasHpke) {
    return {
      ...base,
      resultCid: readText(map, type, 'resultCid', {
        maxBytes: MAX_CID_BYTES,
        pattern: CID_PATTERN,
      }),
    }
  }
  const hpke = readBytes(map, type, 'hpke', { min: HPKE_OVERHEAD, max: Number.MAX_SAFE_INTEGER })
  if (hpke.length !== base.resultSize) {
    throw new WireFormatError('Inline result is not resultSize bytes', {
      details: { type, field: 'hpke', reason: 'length', expected: base.resultSize },
    })
  }
  if (!equalBytes(keccak_256(hpke), base.resultHash)) {
    throw new WireFormatError('Inline result does not hash to resultHash', {
      details: { type, field: 'resultHash', reason: 'mismatch' },
    })
  }
  return { ...base, hpke }
}

// ---------------------------------------------------------------------------------------------
// ResultAck

/**
 * Encodes a {@link ResultAck} body (`v: 2`).
 *
 * @throws {InvalidArgumentError} if a field has the wrong type, length or value.
 */
export function encodeResultAck(message: ResultAck): Uint8Array {
  return encodeChecked(
    'ResultAck',
    () => {
      if (!isObject(message)) return {}
      const map: WireMap = {
        v: RESULT_WIRE_VERSION,
        t: 'result-ack',
        runId: message.runId,
        status: message.status,
      }
      if (message.status === 'refused') {
        map.reasonCode = message.reasonCode
        if (message.retryAfterMs !== undefined) map.retryAfterMs = message.retryAfterMs
      }
      return map
    },
    decodeResultAck,
  )
}

/**
 * Decodes a {@link ResultAck} body. `reasonCode` is present exactly when `status` is
 * `refused`: a code of {@link RESULT_REFUSAL_CODES}, or any other of the same shape (a newer
 * receiver's; final unless `retryAfterMs` is present). `retryAfterMs` never comes with a
 * known final code.
 *
 * @throws {WireFormatError} for malformed, non-canonical or mistyped input.
 * @throws {WireVersionError} for a version other than 2.
 */
export function decodeResultAck(body: Uint8Array): ResultAck {
  const { type, map } = decodeEnvelope(body, RESULT_WIRE_VERSION)
  expectType(type, 'result-ack')
  const status = readText(map, type, 'status', { oneOf: RESULT_ACK_STATUSES })
  if (status === 'ok') {
    checkFields(map, type, ['runId', 'status'])
    return { runId: readBytes(map, type, 'runId', ID_LENGTH), status }
  }
  checkFields(map, type, ['runId', 'status', 'reasonCode'], ['retryAfterMs'])
  const reasonCode: ResultRefusalCode | UnknownResultRefusalCode = readText(
    map,
    type,
    'reasonCode',
    { maxBytes: MAX_RESULT_REFUSAL_CODE_BYTES, pattern: RESULT_REFUSAL_CODE_PATTERN },
  )
  const out: ResultAck = { runId: readBytes(map, type, 'runId', ID_LENGTH), status, reasonCode }
  if (Object.hasOwn(map, 'retryAfterMs')) {
    // A known final code never says when to retry; an unknown code may (it is then retryable).
    if (!isRetryableResultRefusal({ reasonCode, retryAfterMs: 0 })) {
      throw new WireFormatError('retryAfterMs on a final refusal', {
        details: { type, field: 'retryAfterMs', reason: 'unknown' },
      })
    }
    out.retryAfterMs = Number(readUint(map, type, 'retryAfterMs', BigInt(MAX_RETRY_AFTER_MS)))
  }
  return out
}
