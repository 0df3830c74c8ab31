/**
 * @digicap/oci — image capsules: OCI images encrypted exactly as containers/ocicrypt does,
 * with `jwe` and `provider.digicap` recipients, and a strict decryptor.
 */

export type { ImageSpec } from './capsule/image-payload.ts'
export {
  decodeImagePayload,
  encodeImagePayload,
  IMAGE_SPEC_FILE,
  IMAGE_SPEC_VERSION,
  parseImageSpec,
} from './capsule/image-payload.ts'
export type {
  EncryptedLayer,
  LayerEncryptor,
  LayerEncryptorOptions,
} from './cipher/encrypt-layer.ts'
export { layerEncryptor } from './cipher/encrypt-layer.ts'
export type { PrivateLayerOptions, PublicLayerOptions } from './cipher/layer-options.ts'
export {
  CIPHER_AES_256_CTR_HMAC_SHA256,
  decodePrivateOptions,
  decodePublicOptions,
  encodePrivateOptions,
  encodePublicOptions,
  HMAC_LENGTH,
  NONCE_LENGTH,
  SYMMETRIC_KEY_LENGTH,
} from './cipher/layer-options.ts'
export type { OpenLayerOptions, VerifiedLayer } from './cipher/open-layer.ts'
export { DEFAULT_MAX_LAYER_SIZE, openLayer } from './cipher/open-layer.ts'
export type { DigicapPayload } from './digicap/payload.ts'
export {
  DIGICAP_OPTIONS_LABEL,
  DIGICAP_PAYLOAD_VERSION,
  openDigicapPayload,
  parseDigicapPayload,
  sealDigicapPayload,
} from './digicap/payload.ts'
export type {
  DataKeyRequest,
  DigicapRecipientInit,
  DigicapUnwrapper,
  DigicapUnwrapperInit,
} from './digicap/recipient.ts'
export { DIGICAP_PROTOCOL, digicapRecipient, digicapUnwrapper } from './digicap/recipient.ts'
export type { Sha256Digest } from './encoding.ts'
export { isSha256Digest } from './encoding.ts'
export {
  OciFormatError,
  OciIntegrityError,
  OciKeyError,
  OciLimitError,
  OciPrivilegeError,
  OciRegistryError,
  OciTruncatedError,
  OciUnsupportedError,
} from './errors.ts'
export type { BlobStore } from './helia/blob-store.ts'
export type { ImageDistribution } from './helia/distribution.ts'
export {
  DEFAULT_FETCH_TIMEOUT_MS,
  DISTRIBUTION_VERSION,
  MAX_DISTRIBUTION_LENGTH,
  putImageBlobs,
  readImageDistribution,
  storeBlobSource,
} from './helia/distribution.ts'
export { rawCidOfDigest } from './helia/raw-cid.ts'
export type { DecryptImageOptions } from './image/decrypt-image.ts'
export { decryptImage } from './image/decrypt-image.ts'
export type { EncryptImageOptions, ImageResult } from './image/encrypt-image.ts'
export { encryptImage } from './image/encrypt-image.ts'
export { decryptJwe, encryptJwe } from './jwe/jwe.ts'
export type { KeyInput } from './jwe/keys.ts'
export { jwePrivateKey, jwePublicKey } from './jwe/keys.ts'
export type { CapsuleKey } from './keyprovider/capsule-key-file.ts'
export { encodeCapsuleKey, readCapsuleKeyFile } from './keyprovider/capsule-key-file.ts'
export { DIGICAP_KEYPROVIDER_NAME, fileKeyProvider, runKeyProviderCli } from './keyprovider/cli.ts'
export type { KeyProviderHandlerInit } from './keyprovider/handler.ts'
export { keyProviderHandler } from './keyprovider/handler.ts'
export type { KeyProviderParameters, KeyProviderRequest } from './keyprovider/protocol.ts'
export {
  keyUnwrapResponse,
  keyWrapResponse,
  MAX_KEYPROVIDER_REQUEST_LENGTH,
  parseKeyProviderRequest,
} from './keyprovider/protocol.ts'
export { checkDescriptor, checkIndex, checkManifest } from './layout/descriptor.ts'
export type { ImageLayout } from './layout/layout.ts'
export { createLayout, openLayout } from './layout/layout.ts'
export type { Descriptor, ImageIndex, ImageManifest } from './layout/types.ts'
export * from './media-types.ts'
export type { PulledImage, PullImageOptions } from './pull/pull-image.ts'
export { pullImage } from './pull/pull-image.ts'
export type { ImageRunConfig } from './pull/run-config.ts'
export {
  DEFAULT_UID,
  INPUT_PATH,
  LABEL_RESULT,
  OUTPUT_DIR,
  readRunConfig,
} from './pull/run-config.ts'
export {
  encryptionAnnotations,
  publicOptionsOf,
  unwrapPrivateOptions,
} from './recipients/annotations.ts'
export { jweRecipient, jweUnwrapper } from './recipients/jwe-recipient.ts'
export type { LayerRecipient, LayerUnwrapper } from './recipients/recipient.ts'
export type { BlobSource, Repositories } from './registry/blob-source.ts'
export { layoutBlobSource } from './registry/layout-source.ts'
export type { ByteRange } from './registry/range.ts'
export { parseRange } from './registry/range.ts'
export type {
  RegistryHandlerOptions,
  RegistryServer,
  RegistryServerOptions,
} from './registry/server.ts'
export { registryHandler, startRegistry } from './registry/server.ts'
