import { keccak_256 as keccakJob } from '@noble/hashes/sha3.js'
import fc from 'fast-check'
import type {
  AccessRequest,
  AccessResponse,
  ErrorReply,
  KeyRelease,
  ReleaseAck,
  ResultAck,
  ResultDelivery,
} from '../src/index.ts'
import {
  MAX_RETRY_AFTER_MS,
  REFUSAL_CODES,
  RELEASE_ACK_STATUSES,
  REMOTE_ERROR_CODES,
  RESULT_REFUSAL_CODES,
  RETRYABLE_RESULT_REFUSALS,
} from '../src/index.ts'

const EMPTY_JOB_HASH = keccakJob(new Uint8Array(0))

export const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n })
/** Text of at most 256 UTF-8 bytes. */
const shortText = fc.string({ maxLength: 64, unit: 'grapheme' })

export const keyRelease: fc.Arbitrary<KeyRelease> = fc.record({
  grantId: bytes(32),
  capsuleId: bytes(32),
  hpke: bytes(80),
  fastPath: fc.boolean(),
})
export const releaseAck: fc.Arbitrary<ReleaseAck> = fc.record({
  grantId: bytes(32),
  status: fc.constantFrom(...RELEASE_ACK_STATUSES),
})
export const accessRequest: fc.Arbitrary<AccessRequest> = fc.record({
  capsuleId: bytes(32),
  executor: bytes(20),
  ephemeralKey: bytes(32),
  measurement: bytes(32),
  jobParamsHash: fc.constant(EMPTY_JOB_HASH),
  fee: fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }),
  nonce: bytes(32),
  expiry: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  jobParams: fc.constant(new Uint8Array(0)),
  signature: bytes(65),
})
export const accessResponse: fc.Arbitrary<AccessResponse> = fc.oneof(
  fc.record({ status: fc.constant('granted' as const), grantId: bytes(32) }),
  fc.record({ grantId: bytes(32), rest: keyRelease }).map(({ grantId, rest }) => ({
    status: 'granted' as const,
    grantId,
    keyRelease: { ...rest, grantId, fastPath: true },
  })),
  fc.record(
    {
      status: fc.constant('refused' as const),
      reasonCode: fc.constantFrom(...REFUSAL_CODES),
      reason: shortText,
      retryAfterMs: fc.integer({ min: 0, max: MAX_RETRY_AFTER_MS }),
    },
    { requiredKeys: ['status', 'reasonCode'] },
  ),
)
const cid = fc.constantFrom(
  'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
  'QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG',
)
const signedFields = fc.record({
  runId: bytes(32),
  grantId: bytes(32),
  capsuleId: bytes(32),
  executor: bytes(20),
  receiverKey: bytes(32),
  measurement: bytes(32),
  runMeasurement: bytes(32),
  signature: bytes(65),
})
export const resultDelivery: fc.Arbitrary<ResultDelivery> = fc.oneof(
  fc
    .tuple(signedFields, fc.uint8Array({ minLength: 48, maxLength: 300 }))
    .map(([f, hpke]) => ({ ...f, resultHash: keccakJob(hpke), resultSize: hpke.length, hpke })),
  fc
    .tuple(signedFields, bytes(32), fc.integer({ min: 48, max: 2 ** 40 }), cid)
    .map(([f, resultHash, resultSize, resultCid]) => ({
      ...f,
      resultHash,
      resultSize,
      resultCid,
    })),
)
export const resultAck: fc.Arbitrary<ResultAck> = fc.oneof(
  fc.record({ runId: bytes(32), status: fc.constant('ok' as const) }),
  fc.record({
    runId: bytes(32),
    status: fc.constant('refused' as const),
    reasonCode: fc.constantFrom(...RESULT_REFUSAL_CODES),
  }),
  fc.record({
    runId: bytes(32),
    status: fc.constant('refused' as const),
    reasonCode: fc.constantFrom(...RETRYABLE_RESULT_REFUSALS),
    retryAfterMs: fc.integer({ min: 0, max: MAX_RETRY_AFTER_MS }),
  }),
)
export const errorReply: fc.Arbitrary<ErrorReply> = fc.record(
  { code: fc.constantFrom(...REMOTE_ERROR_CODES), message: shortText },
  { requiredKeys: ['code'] },
)
