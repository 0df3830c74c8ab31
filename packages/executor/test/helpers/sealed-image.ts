/**
 * Image layers sealed for the `oci` tests, one way: the layers encrypted to the
 * `provider.digicap` recipient with the capsule key, the blobs put into a store
 * ({@link encryptImageInto}). {@link sealImageLayout} makes what an image capsule's payload
 * carries of it (the sandbox tests); image-capsule.ts builds a whole registered capsule on it.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateX25519KeyPair } from '@digicap/capsule-core'
import { wrapToRecoveryKey } from '@digicap/keyguard'
import {
  type BlobStore,
  type DigicapRecipientInit,
  decodeImagePayload,
  digicapRecipient,
  encodeImagePayload,
  encryptImage,
  openLayout,
  putImageBlobs,
} from '@digicap/oci'

export interface SealedImage {
  manifestDigest: string
  specBytes: Uint8Array
  distribution: string
}

/**
 * The OCI layout at `from` with its layers encrypted to `key` (the encrypted layout is a temp
 * folder, removed), its blobs put into `store`: the committed manifest digest and the
 * distribution map's CID.
 */
export async function encryptImageInto(
  store: BlobStore,
  from: string,
  key: DigicapRecipientInit,
): Promise<{ manifestDigest: string; distribution: string }> {
  const sealedDir = await mkdtemp(join(tmpdir(), 'oci-sealed-'))
  try {
    const [result] = await encryptImage({
      from,
      to: sealedDir,
      recipients: [digicapRecipient(key)],
    })
    const put = await putImageBlobs(await openLayout(sealedDir), store)
    return { manifestDigest: result?.digest as string, distribution: put.cid }
  } finally {
    await rm(sealedDir, { recursive: true, force: true })
  }
}

/** An image sealed with `key` (wrapped to a throw-away recovery key only); the image is disposed of. */
export async function sealImageLayout(
  store: BlobStore,
  image: { dir: string; dispose(): Promise<void> },
  key: { capsuleId: Uint8Array; dataKey: Uint8Array },
): Promise<SealedImage> {
  try {
    const { publicKey } = generateX25519KeyPair()
    const wrappedKeys = [await wrapToRecoveryKey(key.dataKey, publicKey)]
    const sealed = await encryptImageInto(store, image.dir, { ...key, wrappedKeys })
    const payload = encodeImagePayload({ distribution: sealed.distribution })
    return { ...sealed, specBytes: decodeImagePayload(payload).specBytes }
  } finally {
    await image.dispose()
  }
}
