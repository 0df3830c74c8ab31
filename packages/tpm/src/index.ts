/**
 * @packageDocumentation
 *
 * `@digicap/tpm` — one way to reach a TPM 2.0 for every Digicap package (the keyguard's
 * sealer, the attestation agent):
 * - direct transports that carry raw command bytes over swtpm's socket or the kernel device
 *   (`/dev/tpmrm0`), chosen from a TCTI string ({@link transportFor}), with the TPM's retry
 *   warnings retried ({@link sendWithRetry});
 * - response-code decoding and one mapping of failures to typed errors
 *   (`TPM_UNAVAILABLE`, `TPM_BUSY` — {@link TpmLockoutError} for a dictionary-attack lockout —,
 *   `TPM_HANDLE`, `TPM_COMMAND`);
 * - a tpm2-tools runner (argument arrays, stdin/stdout, never a shell) with the same mapping.
 *
 * `@digicap/tpm/testing` starts a real swtpm for tests.
 *
 * @example
 * ```ts
 * import { responseCodeError, sendWithRetry, transportFor } from '@digicap/tpm'
 *
 * const transport = transportFor('device:/dev/tpmrm0', 10_000)!
 * const response = await sendWithRetry(transport, commandBytes)
 * ```
 */

export type { TpmChannel } from './channel.ts'
export { openDeviceChannel, openSocketChannel } from './channel.ts'
export {
  LOCKOUT_HINT,
  TpmBusyError,
  TpmCommandError,
  TpmHandleError,
  TpmLockoutError,
  TpmPolicyError,
  TpmSessionError,
  TpmUnavailableError,
} from './errors.ts'
export {
  HEADER_LENGTH,
  MAX_RESPONSE_LENGTH,
  malformedResponse,
  responseLength,
  TPM_ST_NO_SESSIONS,
  TPM_ST_SESSIONS,
} from './frame.ts'
export { TpmResponseReader, TpmWriter } from './marshal.ts'
export type { NvPublic, P256Sign } from './nv/nv.ts'
export {
  cpHashOf,
  marshalNvPublic,
  NV_OWNER_FIRST,
  NV_OWNER_LAST,
  nvDefineSpace,
  nvIncrementSigned,
  nvName,
  nvReadCounterInSession,
  nvReadPublic,
  nvUndefineSpace,
  policyGetDigest,
  policySignedDigest,
  policySignedHash,
  satisfyPolicySigned,
  TPMA_NV,
} from './nv/nv.ts'
export {
  activateCredential,
  createEkPrimary,
  derSequence,
  EK_AUTH_POLICY,
  EK_RSA_CERTIFICATE_INDEX,
  ekRsaPublicArea,
  readEkCertificateNv,
  TPM_RH_ENDORSEMENT,
} from './object/ek.ts'
export type { RsaKeyPublic } from './object/public.ts'
export { parseRsaPublic, rsaPublicKeyObject, TPMA_OBJECT } from './object/public.ts'
export type { Send } from './object/read-public.ts'
export {
  plainCommand,
  plainResponse,
  readPinnedPublic,
  readRsaPublic,
} from './object/read-public.ts'
export type { P256PublicKey, PolicyApproval } from './policy/authorize.ts'
export {
  p256VerifyKeyPublic,
  satisfyAuthorizedPcrPolicy,
  verifyApproval,
} from './policy/authorize.ts'
export { approvalHash, policyAuthorizeDigest, policyPcrDigest } from './policy/digests.ts'
export {
  counterBytes,
  policyNv,
  policyNvDigest,
  TPM_EO,
} from './policy/nv.ts'
export {
  normalizePcrs,
  PCR_COUNT,
  pcrDigest,
  pcrExtendedValue,
  pcrRead,
  pcrReadInSession,
  pcrSelection,
} from './policy/pcr.ts'
export type { DecodedResponseCode } from './rc.ts'
export {
  BUSY_CODES,
  baseResponseCode,
  busyError,
  decodeResponseCode,
  hexCode,
  RETRYABLE,
  responseCodeDetails,
  responseCodeError,
  TPM_RC,
} from './rc.ts'
export { MAX_RETRIES, retryable, sendWithRetry } from './send.ts'
export type { SessionCommand, SessionResponse } from './session/command.ts'
export { runSessionCommand } from './session/command.ts'
export {
  SESSION_ATTR,
  TPM_ALG,
  TPM_CC,
  TPM_RH_NULL,
  TPM_RH_OWNER,
  TPM_SE,
} from './session/constants.ts'
export type { TpmHashName } from './session/kdfa.ts'
export { kdfa } from './session/kdfa.ts'
export type { SaltKey, TpmSession } from './session/session.ts'
export { flushContext, forgetSession, startSaltedSession } from './session/session.ts'
export type {
  ToolFailureRefiner,
  Tpm2Result,
  Tpm2RunOptions,
  Tpm2ToolsOptions,
} from './tools.ts'
export { mapToolFailure, parseResponseCode, runTpm2Tool } from './tools.ts'
export type { DirectTarget, TpmTransport } from './transport.ts'
export {
  deviceTransport,
  parseDirectTcti,
  socketTransport,
  transportFor,
  withChannel,
} from './transport.ts'
