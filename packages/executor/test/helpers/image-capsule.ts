/**
 * An image capsule made the way the owner's pipeline makes one, on the test world: the data
 * key wrapped by the keyguard's sealer, the image's layers encrypted to the `provider.digicap`
 * recipient, its blobs put into the keyguard node's helia (sealed-image.ts), the payload (image.json + input)
 * sealed into a capsule signed by the owner, the key record stored, the capsule registered.
 */
import {
  createCapsuleHeader,
  generateCapsuleId,
  generateDataKey,
  generateX25519KeyPair,
  type Receiver,
  sealCapsule,
  signCapsuleHeader,
} from '@digicap/capsule-core'
import { wrapDataKey } from '@digicap/keyguard'
import { encodeImagePayload } from '@digicap/oci'
import { getBytes, hexlify } from 'ethers'
import { encryptImageInto } from './sealed-image.ts'
import { send, type World } from './world.ts'

export interface MadeImageCapsule {
  cid: string
  capsuleId: string
  manifestDigest: string
  distribution: string
}

export async function makeImageCapsule(
  w: World,
  o: {
    image: string
    input: Uint8Array
    receivers?: Receiver[]
    policy?: string
    timeLimit?: number
    memoryLimit?: number
  },
): Promise<MadeImageCapsule> {
  const dataKey = generateDataKey()
  const capsuleIdBytes = generateCapsuleId()
  const capsuleId = hexlify(capsuleIdBytes)
  const sealerKey = await w.sealer.publicKey()
  const wrappedKeys = await wrapDataKey(dataKey, {
    sealer: w.sealer,
    recoveryPublicKey: generateX25519KeyPair().publicKey,
  })
  try {
    const { manifestDigest, distribution } = await encryptImageInto(w.kgStore, o.image, {
      capsuleId: capsuleIdBytes,
      dataKey,
      wrappedKeys,
    })
    const plaintext = encodeImagePayload({ distribution, input: o.input })
    const policy = o.policy ?? w.policy
    const header = createCapsuleHeader({
      owner: w.owner.address as `0x${string}`,
      policy: {
        chainId: Number(w.addresses.chainId),
        registry: w.addresses.capsuleRegistry as `0x${string}`,
        policy: policy as `0x${string}`,
      },
      keyguard: { peerId: w.kg.peerId, keyId: sealerKey.keyId, wrapScheme: sealerKey.scheme },
      runtime: {
        kind: 'oci',
        entry: manifestDigest,
        ...(o.timeLimit ? { timeLimit: o.timeLimit } : {}),
        ...(o.memoryLimit ? { memoryLimit: o.memoryLimit } : {}),
      },
      receivers: o.receivers ?? [],
      wrappedKeys,
      capsuleId: capsuleIdBytes,
      dataKey,
      plaintext,
    })
    const signature = signCapsuleHeader(header, getBytes(w.owner.privateKey))
    const bytes = sealCapsule({ header, signature, dataKey, plaintext })
    const cid = await w.kgStore.put(bytes)
    await w.keyStore.put({ capsuleId, wrappedKeys, metadata: { owner: w.owner.address } })
    await send(
      w.c.capsuleRegistry
        .connect(w.owner)
        .register(
          capsuleId,
          policy,
          cid,
          hexlify(header.payload.contentCommitment),
          w.kg.libp2p.peerId.toMultihash().bytes,
          `0x${sealerKey.keyId}`,
        ),
    )
    return { cid, capsuleId, manifestDigest, distribution }
  } finally {
    dataKey.fill(0)
  }
}
