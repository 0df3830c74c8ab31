/**
 * An image layout sealed for the `oci` sandbox tests: its layers encrypted to the
 * `provider.digicap` recipient with the given capsule key, its blobs put into `store`; the
 * result is what an image capsule's payload carries (the committed manifest digest, the
 * image spec, the distribution map's CID). The layout is disposed of.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateX25519KeyPair } from '@digicap/capsule-core'
import { wrapToRecoveryKey } from '@digicap/keyguard'
import {
  type BlobStore,
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

export async function sealImageLayout(
  store: BlobStore,
  image: { dir: string; dispose(): Promise<void> },
  key: { capsuleId: Uint8Array; dataKey: Uint8Array },
): Promise<SealedImage> {
  const sealedDir = await mkdtemp(join(tmpdir(), 'oci-sealed-'))
  try {
    const { publicKey } = generateX25519KeyPair()
    const wrappedKeys = [await wrapToRecoveryKey(key.dataKey, publicKey)]
    const [result] = await encryptImage({
      from: image.dir,
      to: sealedDir,
      recipients: [digicapRecipient({ ...key, wrappedKeys })],
    })
    const put = await putImageBlobs(await openLayout(sealedDir), store)
    const payload = encodeImagePayload({ distribution: put.cid })
    return {
      manifestDigest: result?.digest as string,
      specBytes: decodeImagePayload(payload).specBytes,
      distribution: put.cid,
    }
  } finally {
    await image.dispose()
    await rm(sealedDir, { recursive: true, force: true })
  }
}
