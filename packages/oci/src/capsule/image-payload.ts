/**
 * The payload of an image capsule (SPEC §6): a capsule-core code+data bundle whose entry
 * `image.json` names the image's distribution map in the store, and whose data is the run's
 * input (mounted read-only at /digicap/input). The image itself travels apart, encrypted; the
 * header's runtime entry (the manifest digest) is what ties the two.
 */
import { type Bundle, decodeBundle, encodeBundle } from '@digicap/capsule-core'
import { OciFormatError } from '../errors.ts'

/** The bundle entry holding the image reference. */
export const IMAGE_SPEC_FILE = 'image.json'
export const IMAGE_SPEC_VERSION = 1

export interface ImageSpec {
  v: typeof IMAGE_SPEC_VERSION
  /** CID of the distribution map (`putImageBlobs`). */
  distribution: string
}

/** Encodes an image capsule's plaintext. */
export function encodeImagePayload(init: { distribution: string; input?: Uint8Array }): Uint8Array {
  const spec: ImageSpec = { v: IMAGE_SPEC_VERSION, distribution: init.distribution }
  return encodeBundle({
    entry: IMAGE_SPEC_FILE,
    files: { [IMAGE_SPEC_FILE]: new TextEncoder().encode(JSON.stringify(spec)) },
    data: init.input ?? new Uint8Array(0),
  })
}

/**
 * Parses `image.json`.
 * @throws {OciFormatError} for anything but `{"v":1,"distribution":"<cid>"}`.
 */
export function parseImageSpec(bytes: Uint8Array): ImageSpec {
  let o: Record<string, unknown>
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (cause) {
    throw new OciFormatError('image.json is not JSON', { cause })
  }
  if (
    typeof o !== 'object' ||
    o === null ||
    o.v !== IMAGE_SPEC_VERSION ||
    Object.keys(o).sort().join(',') !== 'distribution,v' ||
    typeof o.distribution !== 'string' ||
    o.distribution.length === 0 ||
    o.distribution.length > 256
  ) {
    throw new OciFormatError('image.json is not {"v":1,"distribution":"<cid>"}')
  }
  return { v: IMAGE_SPEC_VERSION, distribution: o.distribution }
}

/**
 * Decodes an image capsule's plaintext into its spec and input.
 * @throws BundleFormatError (capsule-core) / {@link OciFormatError}.
 */
export function decodeImagePayload(bytes: Uint8Array): {
  spec: ImageSpec
  specBytes: Uint8Array
  input: Uint8Array
} {
  const bundle: Bundle = decodeBundle(bytes)
  const specBytes = bundle.files[IMAGE_SPEC_FILE]
  if (bundle.entry !== IMAGE_SPEC_FILE || !specBytes || Object.keys(bundle.files).length !== 1) {
    throw new OciFormatError('An image capsule payload holds exactly image.json and the input')
  }
  return { spec: parseImageSpec(specBytes), specBytes, input: bundle.data }
}
