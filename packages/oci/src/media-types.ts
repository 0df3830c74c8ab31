/**
 * OCI media types and the ocicrypt annotation names (containers/ocicrypt `spec/spec.go`,
 * `encryption.go`). An encrypted layer's media type is its plain media type plus `+encrypted`.
 */
import { OciUnsupportedError } from './errors.ts'

export const MEDIA_TYPE_IMAGE_INDEX = 'application/vnd.oci.image.index.v1+json'
export const MEDIA_TYPE_IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const MEDIA_TYPE_IMAGE_CONFIG = 'application/vnd.oci.image.config.v1+json'
export const MEDIA_TYPE_LAYER = 'application/vnd.oci.image.layer.v1.tar'
export const MEDIA_TYPE_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
export const MEDIA_TYPE_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd'
export const MEDIA_TYPE_LAYER_ENC = `${MEDIA_TYPE_LAYER}+encrypted`
export const MEDIA_TYPE_LAYER_GZIP_ENC = `${MEDIA_TYPE_LAYER_GZIP}+encrypted`
export const MEDIA_TYPE_LAYER_ZSTD_ENC = `${MEDIA_TYPE_LAYER_ZSTD}+encrypted`

/** The layer media types this package encrypts (Docker's gzip layer type too, as skopeo does). */
export const ENCRYPTABLE_LAYER_MEDIA_TYPES: readonly string[] = [
  MEDIA_TYPE_LAYER,
  MEDIA_TYPE_LAYER_GZIP,
  MEDIA_TYPE_LAYER_ZSTD,
]

const ENCRYPTED_SUFFIX = '+encrypted'

/** Prefix of every recipient annotation: `…keys.jwe`, `…keys.provider.digicap`. */
export const ANNOTATION_KEYS_PREFIX = 'org.opencontainers.image.enc.keys.'
/** The public layer options (cipher, HMAC), base64 of their JSON. */
export const ANNOTATION_PUBOPTS = 'org.opencontainers.image.enc.pubopts'
/** Every annotation of the encryption namespace starts with this (removed on decryption). */
export const ANNOTATION_ENC_PREFIX = 'org.opencontainers.image.enc.'
/** The tag of a manifest in an image layout's index.json. */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name'

/** Whether a layer media type is an encrypted one. */
export function isEncryptedMediaType(mediaType: string): boolean {
  return mediaType.endsWith(ENCRYPTED_SUFFIX)
}

/**
 * The encrypted media type of a plain layer media type.
 * @throws {OciUnsupportedError} for a media type that is not a tar layer (or already encrypted).
 */
export function encryptedMediaType(mediaType: string): string {
  if (!ENCRYPTABLE_LAYER_MEDIA_TYPES.includes(mediaType)) {
    throw new OciUnsupportedError('Not a layer media type that can be encrypted', {
      details: { mediaType },
      hint: `Encryptable: ${ENCRYPTABLE_LAYER_MEDIA_TYPES.join(', ')}.`,
    })
  }
  return mediaType + ENCRYPTED_SUFFIX
}

/**
 * The plain media type of an encrypted layer media type.
 * @throws {OciUnsupportedError} for a media type that is not an encrypted tar layer.
 */
export function decryptedMediaType(mediaType: string): string {
  const plain = mediaType.slice(0, -ENCRYPTED_SUFFIX.length)
  if (!isEncryptedMediaType(mediaType) || !ENCRYPTABLE_LAYER_MEDIA_TYPES.includes(plain)) {
    throw new OciUnsupportedError('Not an encrypted layer media type', { details: { mediaType } })
  }
  return plain
}

/** The annotation that carries the wrapped options of one recipient protocol. */
export function keysAnnotation(protocol: string): string {
  return ANNOTATION_KEYS_PREFIX + protocol
}
