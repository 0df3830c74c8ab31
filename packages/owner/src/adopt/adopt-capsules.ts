/**
 * The keyguard's side of sealing elsewhere: a laptop sealed and registered a capsule with the
 * keyguard's public key; the keyguard takes its wrapped key into its key store from what is
 * public (the chain record and the header on IPFS), after checking that the header is the
 * owner's, names this keyguard, and carries a copy that opens to the committed key.
 */
import {
  type Address,
  CapsuleSignatureError,
  checkKeyCommitment,
  DigicapError,
  toHex,
  verifyCapsuleHeader,
} from '@digicap/capsule-core'
import type {
  CapsuleDirectory,
  HeaderFetcher,
  KeyStore,
  OwnedCapsule,
  Sealer,
} from '@digicap/keyguard'
import { CapsuleAdoptionError } from '../errors.ts'

export interface AdoptCapsulesParameters {
  /** The owner whose capsules this keyguard guards. */
  owner: Address
  /** This keyguard's libp2p peer id: only capsules registered to it are adopted. */
  peerId: string
  /** Only these capsule ids (0x-hex); default every capsule the owner registered. */
  capsuleIds?: readonly string[]
  /** Per-capsule header fetch timeout. Default 30 000 ms. */
  fetchTimeoutMs?: number
  /** Metadata stored with each record (besides `cid`, `policy`, `runtime`). */
  metadata?: Record<string, string>
}

export interface AdoptCapsulesComponents {
  sealer: Sealer
  keyStore: Pick<KeyStore, 'get' | 'put'>
  directory: CapsuleDirectory
  fetcher: HeaderFetcher
}

export interface AdoptCapsulesResult {
  /** Records added to the key store now. */
  adopted: string[]
  /** Already in the key store. */
  present: string[]
  /** Registered to another keyguard or key, or revoked: left alone. */
  skipped: string[]
  /** Could not be adopted: the error's code (`CAPSULE_SIGNATURE`, `UNWRAP`, a fetch error). */
  failed: { capsuleId: string; code: string; message: string }[]
}

function failure(capsuleId: string, err: unknown): AdoptCapsulesResult['failed'][number] {
  if (err instanceof DigicapError) {
    return { capsuleId, code: String(err.code), message: err.shortMessage }
  }
  return { capsuleId, code: 'UNKNOWN', message: (err as Error)?.message ?? String(err) }
}

/**
 * Adopts the owner's capsules registered to this keyguard that its key store lacks
 * (sealed on another machine with the public wrapping key). Idempotent; one capsule's
 * failure is reported, never thrown. Each adoption unwraps the key once in the sealer to
 * check it against the header's key commitment, and zeroes it.
 *
 * @throws whatever `directory.ownedCapsules` or the sealer's `publicKey()` throws.
 * @example
 * ```ts
 * const r = await adoptCapsules({ owner, peerId }, { sealer, keyStore, directory, fetcher })
 * ```
 */
export async function adoptCapsules(
  params: AdoptCapsulesParameters,
  components: AdoptCapsulesComponents,
): Promise<AdoptCapsulesResult> {
  const key = await components.sealer.publicKey()
  const wanted = params.capsuleIds?.map((id) => id.toLowerCase())
  const result: AdoptCapsulesResult = { adopted: [], present: [], skipped: [], failed: [] }
  for (const capsule of await components.directory.ownedCapsules(params.owner)) {
    const id = capsule.capsuleId.toLowerCase()
    if (wanted && !wanted.includes(id)) continue
    if (
      capsule.revoked ||
      capsule.keyguardPeerId !== params.peerId ||
      capsule.keyguardKeyId !== key.keyId
    ) {
      result.skipped.push(id)
      continue
    }
    try {
      if (await components.keyStore.get(id)) {
        result.present.push(id)
        continue
      }
      await adoptOne(capsule, id)
      result.adopted.push(id)
    } catch (err) {
      result.failed.push(failure(id, err))
    }
  }
  return result

  async function adoptOne(capsule: OwnedCapsule, id: string): Promise<void> {
    const parsed = await components.fetcher.fetchHeader(capsule.cid, {
      signal: AbortSignal.timeout(params.fetchTimeoutMs ?? 30_000),
    })
    verifyCapsuleHeader(parsed, { owner: params.owner })
    const { header } = parsed
    const headerId = toHex(header.capsuleId)
    if (headerId !== id) {
      throw new CapsuleSignatureError('The CID holds another capsule', {
        details: { expected: id, got: headerId },
      })
    }
    if (header.policy.policy.toLowerCase() !== capsule.policy.toLowerCase()) {
      throw new CapsuleAdoptionError('The header names another policy than the chain', {
        details: { capsuleId: id, header: header.policy.policy, chain: capsule.policy },
      })
    }
    const mine = header.wrappedKeys.find((w) => w.keyId === key.keyId && w.scheme === key.scheme)
    if (!mine) {
      throw new CapsuleAdoptionError('The header has no copy for this keyguard', {
        details: { capsuleId: id, keyId: key.keyId },
      })
    }
    const dataKey = await components.sealer.unwrap(mine)
    const ok = checkKeyCommitment(parsed, dataKey)
    dataKey.fill(0)
    if (!ok) {
      throw new CapsuleAdoptionError("The keyguard's copy fails the header's key commitment", {
        details: { capsuleId: id },
      })
    }
    await components.keyStore.put({
      capsuleId: id,
      wrappedKeys: header.wrappedKeys,
      metadata: {
        ...params.metadata,
        owner: params.owner,
        cid: capsule.cid,
        policy: capsule.policy,
        runtime: header.runtime.kind,
      },
    })
  }
}
