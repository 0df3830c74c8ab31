/** Picking the manifests of an index to work on. */
import { OciFormatError, OciIntegrityError, OciUnsupportedError } from '../errors.ts'
import type { Descriptor, ImageIndex } from '../layout/types.ts'
import { ANNOTATION_REF_NAME, MEDIA_TYPE_IMAGE_MANIFEST } from '../media-types.ts'

/**
 * The index entries to process: all of them, or those whose ref name is `ref`, or the one
 * whose digest is `manifestDigest` (the image capsule's commitment).
 * @throws {OciIntegrityError} (`reason: 'manifest-digest'`) when no entry has `manifestDigest`;
 *   {@link OciFormatError} when `ref` names none; {@link OciUnsupportedError} for nested indexes.
 */
export function selectManifests(
  index: ImageIndex,
  ref?: string,
  manifestDigest?: string,
): Descriptor[] {
  const chosen = index.manifests.filter(
    (m) =>
      (ref === undefined || m.annotations?.[ANNOTATION_REF_NAME] === ref) &&
      (manifestDigest === undefined || m.digest === manifestDigest),
  )
  if (chosen.length === 0 && manifestDigest !== undefined) {
    throw new OciIntegrityError('No manifest in index.json has the committed digest', {
      details: { reason: 'manifest-digest', expected: manifestDigest, ref },
      hint: 'The image was replaced or altered after it was sealed: fetch it again from another peer.',
    })
  }
  if (chosen.length === 0) {
    throw new OciFormatError('No manifest in index.json matches', { details: { ref } })
  }
  for (const m of chosen) {
    if (m.mediaType !== MEDIA_TYPE_IMAGE_MANIFEST) {
      throw new OciUnsupportedError('Only image manifests are supported in index.json', {
        details: { mediaType: m.mediaType },
        hint: 'Copy one platform out first: skopeo copy --override-arch … oci:in oci:out.',
      })
    }
  }
  return chosen
}
