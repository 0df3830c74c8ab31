/**
 * @packageDocumentation
 *
 * `@digicap/capsule-core` — the Digicap capsule format and the crypto every other package
 * shares. No network, no chain, no TPM. The format is specified in `SPEC.md`.
 *
 * Guarantees:
 * - A capsule is `"DIGICAP" || version || u32 header length || canonical CBOR header ||
 *   owner signature || AES-256-GCM STREAM chunks`. Parsing is strict: bad magic, unknown
 *   versions, non-canonical CBOR, unknown fields and out-of-range sizes are rejected.
 * - The owner signs the header with EIP-712 (`capsuleTypedData`); `openCapsule` and the
 *   opening streams always verify it before decrypting anything.
 * - Every chunk binds keccak256(header bytes) as AAD and its index and last-chunk flag in its
 *   nonce: tampering, reordering, duplication, truncation, trailing data, a foreign header or
 *   a wrong key each fail with a typed error, and no unauthenticated plaintext is released.
 * - The header's plaintext commitment is keyed (HMAC under a key derived from the data key),
 *   so it does not let anyone without the key confirm a guessed plaintext.
 * - Streams keep memory bounded by about two chunks (default chunk 1 MiB) for any size.
 * - Every error crossing this package's boundary is a {@link DigicapError} with a stable
 *   `code`; no message carries key material.
 * - HPKE helpers implement RFC 9180 base mode with X25519 / HKDF-SHA256 / AES-256-GCM.
 *
 * @example
 * ```ts
 * import { addressFromPrivateKey, createCapsuleHeader, generateDataKey, openCapsule,
 *   sealCapsule, signCapsuleHeader } from '@digicap/capsule-core'
 *
 * const dataKey = generateDataKey()
 * const plaintext = new TextEncoder().encode('hello capsule')
 * const header = createCapsuleHeader({
 *   owner: addressFromPrivateKey(ownerKey), policy, keyguard, runtime: { kind: 'data' },
 *   dataKey, plaintext,
 * })
 * const capsule = sealCapsule({ header, signature: signCapsuleHeader(header, ownerKey), dataKey, plaintext })
 * const opened = openCapsule(capsule, { dataKey }) // opened.plaintext equals plaintext
 * ```
 */

export type { Bundle, DecodeBundleOptions } from './bundle/code-bundle.ts'
export {
  BUNDLE_VERSION,
  DEFAULT_MAX_BUNDLE_BYTES,
  decodeBundle,
  encodeBundle,
} from './bundle/code-bundle.ts'
export { PAYLOAD_DIGEST_LABEL, payloadDigest } from './bundle/payload-digest.ts'
export type {
  MeasuredRuntime,
  RunMeasurements,
  RuntimeMeasurementParameters,
} from './bundle/run-measurement.ts'
export {
  RUN_MEASUREMENT_LABEL,
  RUN_MEASUREMENT_VERSION,
  requestMeasurement,
  runtimeDigest,
  runtimeMeasurement,
} from './bundle/run-measurement.ts'
export type {
  CreateCapsuleHeaderParameters,
  OpenedCapsule,
  OpenOptions,
  SealParameters,
} from './capsule.ts'
export {
  capsuleChunkRange,
  capsuleId,
  checkKeyCommitment,
  createCapsuleHeader,
  openCapsule,
  openChunk,
  prepareOpen,
  sealCapsule,
  verifyCapsuleHeader,
} from './capsule.ts'
export { type RpcAnswer, redactRpcUrl, rpcCall, rpcChainId } from './chain/json-rpc.ts'
export type { AccessRequestDomain } from './eip712/access-request.ts'
export {
  ACCESS_DOMAIN_NAME,
  ACCESS_DOMAIN_VERSION,
  ACCESS_REQUEST_TYPES,
  accessRequestDomain,
} from './eip712/access-request.ts'
export {
  CAPSULE_TYPED_DATA_TYPES,
  capsuleHeaderHash,
  capsuleSigningDigest,
  capsuleTypedData,
  signCapsuleHeader,
} from './eip712/capsule-typed-data.ts'
export { privateKeySigner } from './eip712/private-key-signer.ts'
export {
  addressFromPrivateKey,
  recoverDigestSigner,
  recoverTypedDataSigner,
  SIGNATURE_LENGTH,
  signDigest,
} from './eip712/signature.ts'
export type { DigicapSigner } from './eip712/signer.ts'
export { signTypedDataWith } from './eip712/signer.ts'
export type {
  TypedData,
  TypedDataDomain,
  TypedDataField,
  TypedDataTypes,
} from './eip712/typed-data.ts'
export {
  encodeTypedDataType,
  hashStruct,
  hashTypedData,
  hashTypedDataDomain,
} from './eip712/typed-data.ts'
export { abiWord, leftPad32 } from './encoding/abi.ts'
export type { Address } from './encoding/address.ts'
export {
  addressToBytes,
  checksumAddress,
  isAddress,
  normalizeAddress,
} from './encoding/address.ts'
export { concatBytes, equalBytes } from './encoding/bytes.ts'
export type { StrictCborOptions } from './encoding/cbor.ts'
export { strictCborDecodeOptions } from './encoding/cbor.ts'
export type { Hex, HexToBytesOptions } from './encoding/hex.ts'
export { hexToBytes, isHex, toHex } from './encoding/hex.ts'
export type { DigicapErrorCode, DigicapErrorOptions } from './errors.ts'
export {
  BundleFormatError,
  CapsuleFormatError,
  CapsuleIntegrityError,
  CapsuleKeyError,
  CapsuleLimitError,
  CapsuleSignatureError,
  CapsuleTruncatedError,
  CapsuleVersionError,
  ChainReadError,
  DigicapError,
  HpkeError,
  InvalidArgumentError,
} from './errors.ts'
export type {
  CommitAndSealFileParameters,
  FilePieceDigest,
  FileThreadsOption,
  SealFileParameters,
  WarmFileLanesOptions,
} from './file/index.ts'
export {
  commitAndSealFile,
  commitPlaintextFile,
  MAX_FILE_THREADS,
  openFile,
  openFileInto,
  PARALLEL_FILE_MIN_BYTES,
  sealFile,
  sha256FilePieces,
  warmFileLanes,
} from './file/index.ts'
export type { GrantIdParameters } from './grant-id.ts'
export { grantId } from './grant-id.ts'
export type {
  CapsuleHeader,
  KeyguardReference,
  PayloadDescriptor,
  PolicyReference,
  Receiver,
  RuntimeKind,
  RuntimeRequirements,
} from './header.ts'
export {
  CAPSULE_FORMAT_VERSION,
  CAPSULE_FORMAT_VERSION_2,
  CAPSULE_FORMAT_VERSIONS,
  CAPSULE_MAGIC,
  CAPSULE_PREAMBLE_LENGTH,
  CAPSULE_SIGNATURE_LENGTH,
  CHUNK_TAG_LENGTH,
  CIPHER_SUITE_AES_256_GCM_STREAM,
  DEFAULT_CHUNK_SIZE,
  decodeCapsuleHeader,
  encodeCapsuleHeader,
  MAX_CHUNK_SIZE,
  MAX_HEADER_LENGTH,
  MAX_RECEIVERS,
  MAX_STRING_LENGTH,
  MAX_WRAPPED_KEYS,
  MIN_CHUNK_SIZE,
  V2_CHUNK_SIZE,
} from './header.ts'
export type { HpkeSealed, X25519KeyPair } from './hpke.ts'
export {
  decodeHpkeSealed,
  encodeHpkeSealed,
  generateX25519KeyPair,
  HPKE_OVERHEAD,
  hpkeOpen,
  hpkeSeal,
  X25519_KEY_LENGTH,
  x25519PublicKey,
} from './hpke.ts'
export type { CiphertextCommitment, PlaintextCommitment, PlaintextCommitter } from './keys.ts'
export {
  createCiphertextCommitmentCombiner,
  createPlaintextCommitment,
  DATA_KEY_LENGTH,
  generateCapsuleId,
  generateDataKey,
} from './keys.ts'
export type { ParsedCapsuleHeader } from './parse.ts'
export { parseCapsuleHeader } from './parse.ts'
export type { PayloadOpener } from './payload.ts'
export { parseReceiver } from './receiver.ts'
export type { OpenStream } from './streams.ts'
export { openNodeStream, openStream, sealNodeStream, sealStream } from './streams.ts'
export type { VerifiedCapsuleHeader } from './verified-header.ts'
export { HEADER_SIGNATURE_CHANNEL, verifiedCapsuleHeader } from './verified-header.ts'
export type { WrappedKey, WrapScheme } from './wrapped-key.ts'
export { checkWrappedKey, MAX_WRAPPED_KEY_LENGTH } from './wrapped-key.ts'
