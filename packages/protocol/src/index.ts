/**
 * @packageDocumentation
 *
 * `@digicap/protocol` — the libp2p wire protocols shared by the keyguard, the executor and
 * receivers: `/digicap/key-release/1.0.0`, `/digicap/fast-path/1.0.0` and
 * `/digicap/result/2.0.0` (see SPEC.md), their strict codecs, and js-libp2p 3 stream
 * plumbing.
 *
 * Guarantees:
 * - Every frame is `uvarint(length) || canonical CBOR map {v: 1, t: type, …}`; decoders accept
 *   only canonical CBOR with exactly the spec's fields and lengths, and reject everything
 *   else with a typed {@link DigicapError} (`WIRE_FORMAT`, `WIRE_VERSION`, `WIRE_TOO_LARGE`, …).
 * - A frame's declared length is checked against the protocol's maximum before any body byte
 *   is buffered.
 * - {@link handle} never lets bad input throw inside the node: it answers with an `error`
 *   reply or aborts the stream, and keeps serving.
 * - Access requests are signed as EIP-712 typed data (domain `Digicap`/`1`); recovery rejects
 *   malleable (high-s) signatures.
 * - No key material appears in error messages. Nothing runs at import time.
 *
 * @example
 * ```ts
 * import { handle, request, keyReleaseProtocol } from '@digicap/protocol'
 *
 * // executor
 * await handle(executorNode, keyReleaseProtocol, async (release) => {
 *   const key = await hpkeOpen(ephemeral.privateKey, decodeHpkeSealed(release.hpke), release.grantId)
 *   return { grantId: release.grantId, status: 'ok' }
 * })
 * // keyguard
 * const ack = await request(keyguardNode, executorPeerId, keyReleaseProtocol, release, { timeout: 5000 })
 * ```
 */

export type { AnyMessage } from './any-message.ts'
export { decodeMessage } from './any-message.ts'
export type {
  AttestActivate,
  AttestActivated,
  AttestChallenge,
  AttestCleanup,
  AttestEvidence,
  AttestRequest,
  AttestResponse,
} from './attest.ts'
export {
  ATTEST_PCRS,
  ATTEST_PROTOCOL,
  attestActivateProtocol,
  attestProtocol,
  attestServeProtocol,
  decodeAttestActivate,
  decodeAttestActivated,
  decodeAttestChallenge,
  decodeAttestEvidence,
  encodeAttestActivate,
  encodeAttestActivated,
  encodeAttestChallenge,
  encodeAttestEvidence,
  MAX_ATTEST_BYTES,
  MAX_CREDENTIAL_BYTES,
  MAX_CREDENTIAL_SECRET,
  MAX_EVENT_LOG_BYTES,
  MAX_RECORD_BYTES,
} from './attest.ts'
export type {
  AttestForward,
  AttestForwarded,
  AttestForwardStatus,
  AttestPhase,
} from './attest-forward.ts'
export {
  ATTEST_FORWARD_PROTOCOL,
  ATTEST_FORWARD_STATUSES,
  ATTEST_PHASES,
  attestForwardProtocol,
  decodeAttestForward,
  decodeAttestForwarded,
  encodeAttestForward,
  encodeAttestForwarded,
} from './attest-forward.ts'
export type { WireMap } from './cbor.ts'
export { MAX_U64, WIRE_VERSION } from './cbor.ts'
export type {
  ConnectionGuard,
  ConnectionGuardComponents,
  ConnectionGuardInit,
  ConnectionGuardStats,
  CutReason,
  StreamBudget,
  StreamVerdict,
} from './connection-guard.ts'
export { createConnectionGuard, hostOf } from './connection-guard.ts'
export type { AccessDomain, AccessRequestTypedData, Address } from './eip712.ts'
export {
  ACCESS_DOMAIN_NAME,
  ACCESS_DOMAIN_VERSION,
  ACCESS_REQUEST_TYPES,
  accessDomainSeparator,
  accessRequestDigest,
  accessRequestReplayKey,
  accessRequestSigningBytes,
  accessRequestTypedData,
  addressOfPrivateKey,
  addressToBytes,
  recoverAccessRequestSigner,
  signAccessRequest,
  signAccessRequestWith,
  toChecksumAddress,
  verifyAccessRequestSignature,
} from './eip712.ts'
export type { RemoteErrorCode, WireErrorCode } from './errors.ts'
export {
  HandlerFailedError,
  ResultHeaderInvalidError,
  ResultInvalidError,
  ResultReceiverStoppedError,
  ResultRefusedError,
  ResultReplayStoreError,
  RetryExhaustedError,
  WireAbortedError,
  WireFormatError,
  WireRemoteError,
  WireSignatureError,
  WireStreamError,
  WireTimeoutError,
  WireTooLargeError,
  WireTruncatedError,
  WireVersionError,
} from './errors.ts'
export {
  decodeFrame,
  encodeFrame,
  MAX_CONTROL_FRAME,
  MAX_FRAME_LIMIT,
  MAX_RESULT_FRAME,
} from './frame.ts'
export type {
  HandleOptions,
  HandlerContext,
  ProtocolRegistrar,
  RequestHandler,
} from './handle.ts'
export { handle } from './handle.ts'
export type {
  AccessRequest,
  AccessResponse,
  ErrorReply,
  KeyRelease,
  MessageType,
  RefusalCode,
  ReleaseAck,
  ReleaseAckStatus,
} from './messages.ts'
export {
  ADDRESS_LENGTH,
  DATA_KEY_LENGTH,
  decodeAccessRequest,
  decodeAccessResponse,
  decodeErrorReply,
  decodeKeyRelease,
  decodeReleaseAck,
  encodeAccessRequest,
  encodeAccessResponse,
  encodeErrorReply,
  encodeKeyRelease,
  encodeReleaseAck,
  ID_LENGTH,
  KEY_RELEASE_HPKE_LENGTH,
  MAX_RETRY_AFTER_MS,
  MAX_TEXT_BYTES,
  MESSAGE_TYPES,
  REFUSAL_CODES,
  RELEASE_ACK_STATUSES,
  REMOTE_ERROR_CODES,
  SIGNATURE_LENGTH,
} from './messages.ts'
export type { PbftMessage, PbftPhase, PbftVote } from './pbft.ts'
export {
  decodePbftMessage,
  encodePbftMessage,
  PBFT_MAX_FRAME,
  PBFT_MAX_MEMBERS,
  PBFT_MAX_PROOF,
  PBFT_MAX_VERDICT,
  PBFT_PHASES,
  PBFT_PROTOCOL,
} from './pbft.ts'
export type { WireProtocol } from './protocols.ts'
export {
  FAST_PATH_PROTOCOL,
  fastPathProtocol,
  KEY_RELEASE_PROTOCOL,
  keyReleaseProtocol,
  RESULT_PROTOCOL,
  resultProtocol,
} from './protocols.ts'
export type {
  RateDecision,
  RateLimiter,
  RateLimiterComponents,
  RateLimiterInit,
} from './rate-limit.ts'
export { createRateLimiter } from './rate-limit.ts'
export type {
  ReplayCache,
  ReplayCacheComponents,
  ReplayCacheInit,
  ReplayVerdict,
} from './replay-cache.ts'
export { createReplayCache } from './replay-cache.ts'
export type {
  ProtocolDialer,
  RequestOptions,
  RequestTarget,
  StreamOpener,
} from './request.ts'
export { DEFAULT_TIMEOUT_MS, decodeReply, request, requestOn } from './request.ts'
export type {
  ResultAck,
  ResultDelivery,
  ResultRefusalCode,
  SignedResultFields,
  UnknownResultRefusalCode,
} from './result.ts'
export {
  decodeResultAck,
  decodeResultDelivery,
  encodeResultAck,
  encodeResultDelivery,
  isRetryableResultRefusal,
  MAX_RESULT_REFUSAL_CODE_BYTES,
  MAX_RESULT_SIZE,
  RESULT_ACK_STATUSES,
  RESULT_REFUSAL_CODE_PATTERN,
  RESULT_REFUSAL_CODES,
  RESULT_WIRE_VERSION,
  RETRYABLE_RESULT_REFUSALS,
  resultAad,
  resultHashOf,
} from './result.ts'
export type {
  HeaderResultCapsules,
  HeaderResultCapsulesInit,
  ResultCapsuleRecord,
  ResultCapsuleRegistry,
  ResultCapsuleSource,
  ResultCapsuleStore,
} from './result-capsules.ts'
export { headerResultCapsules } from './result-capsules.ts'
export type {
  ReceivedResult,
  ResultGrantSource,
  ResultReceiver,
  ResultReceiverComponents,
  ResultReceiverInit,
  ResultReceiverStats,
  ResultReplayStore,
  ResultStore,
} from './result-receiver.ts'
export { createResultReceiver } from './result-receiver.ts'
export type {
  FileResultReplaysComponents,
  FileResultReplaysInit,
} from './result-replay-file.ts'
export { fileResultReplays } from './result-replay-file.ts'
export type { ResultDomain } from './result-signature.ts'
export {
  RESULT_DOMAIN_NAME,
  RESULT_DOMAIN_VERSION,
  RESULT_TYPES,
  recoverResultSigner,
  resultDigest,
  resultTypedData,
  signResult,
  signResultWith,
} from './result-signature.ts'
export type {
  GrantRecord,
  ResultCheckContext,
  ResultEnvelopeContext,
  ResultVerdict,
} from './result-verify.ts'
export {
  checkResultDelivery,
  checkResultEnvelope,
  checkResultGrant,
  checkResultReceivers,
  grantIdOf,
} from './result-verify.ts'
export type { RetryAttempt, RetryOptions } from './retry.ts'
export { retryWithBackoff } from './retry.ts'
export type { ReadMessageOptions, ReadMessagesOptions, SendMessageOptions } from './stream.ts'
export { KEPT_STREAM_BUFFER, readMessage, readMessages, sendMessage } from './stream.ts'
export type {
  StreamGate,
  StreamGateInit,
  StreamGateStats,
  StreamTicket,
} from './stream-gate.ts'
export { createStreamGate } from './stream-gate.ts'
