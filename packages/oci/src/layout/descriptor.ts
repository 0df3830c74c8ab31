/** Shape checks of descriptors, manifests and indexes read from untrusted JSON. */
import { checkDigest } from '../encoding.ts'
import { OciFormatError } from '../errors.ts'
import type { Descriptor, ImageIndex, ImageManifest } from './types.ts'

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Checks a descriptor: media type, sha256 digest, non-negative integer size, string annotations.
 * @throws {OciFormatError} naming the field.
 */
export function checkDescriptor(value: unknown, name: string): Descriptor {
  if (!isObject(value)) throw new OciFormatError(`${name} is not an object`)
  if (typeof value.mediaType !== 'string' || value.mediaType.length === 0) {
    throw new OciFormatError(`${name}.mediaType is missing`)
  }
  checkDigest(value.digest, `${name}.digest`)
  if (!Number.isSafeInteger(value.size) || (value.size as number) < 0) {
    throw new OciFormatError(`${name}.size is not a non-negative integer`)
  }
  if (value.annotations !== undefined) {
    if (!isObject(value.annotations))
      throw new OciFormatError(`${name}.annotations is not an object`)
    for (const v of Object.values(value.annotations)) {
      if (typeof v !== 'string')
        throw new OciFormatError(`${name}.annotations has a non-string value`)
    }
  }
  return value as Descriptor
}

/** Checks an image manifest. @throws {OciFormatError} */
export function checkManifest(value: unknown): ImageManifest {
  if (!isObject(value) || value.schemaVersion !== 2) {
    throw new OciFormatError('Manifest is not an OCI schemaVersion 2 manifest')
  }
  checkDescriptor(value.config, 'config')
  if (!Array.isArray(value.layers)) throw new OciFormatError('Manifest has no layers list')
  value.layers.forEach((layer, i) => {
    checkDescriptor(layer, `layers[${i}]`)
  })
  return value as ImageManifest
}

/** Checks an image index. @throws {OciFormatError} */
export function checkIndex(value: unknown): ImageIndex {
  if (!isObject(value) || value.schemaVersion !== 2 || !Array.isArray(value.manifests)) {
    throw new OciFormatError('index.json is not an OCI schemaVersion 2 index')
  }
  value.manifests.forEach((m, i) => {
    checkDescriptor(m, `manifests[${i}]`)
  })
  return value as ImageIndex
}
