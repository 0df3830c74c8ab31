/**
 * A sandbox job from a decoded code+data bundle (the format itself is capsule-core's:
 * `encodeBundle` / `decodeBundle`, docs/bundle.md there).
 */
import { type Bundle, BundleFormatError } from '@digicap/capsule-core'
import { decodeImagePayload } from '@digicap/oci'
import type { RuntimeDescriptor, SandboxJob } from '../sandbox/types.ts'

/**
 * Build a sandbox job from the capsule header's runtime field and its decoded bundle.
 * @throws BundleFormatError when the header names another entry than the bundle.
 */
export function jobFromBundle(
  runtime: RuntimeDescriptor,
  bundle: Bundle,
  args?: readonly string[],
): SandboxJob {
  if (runtime.kind === 'data') return { runtime, code: new Uint8Array(0), input: bundle.data, args }
  if (runtime.entry !== bundle.entry) {
    throw new BundleFormatError('Malformed code+data bundle', {
      details: {
        reason: 'runtime entry does not match the bundle entry',
        runtimeEntry: runtime.entry.slice(0, 64),
        bundleEntry: bundle.entry,
      },
    })
  }
  return { runtime, code: bundle.files[bundle.entry]!, input: bundle.data, args }
}

/**
 * The job of an image capsule: its payload's `image.json` as the code, its data as the input,
 * and the capsule key the layer options are sealed to (`@digicap/oci`, SPEC §6).
 * @throws BundleFormatError / OciFormatError for a payload that is not an image capsule's.
 */
export function imageJob(
  runtime: RuntimeDescriptor,
  plaintext: Uint8Array,
  capsuleId: Uint8Array,
  dataKey: Uint8Array,
  args?: readonly string[],
): SandboxJob {
  const { specBytes, input } = decodeImagePayload(plaintext)
  return { runtime, code: specBytes, input, args, capsuleKey: { capsuleId, dataKey } }
}
