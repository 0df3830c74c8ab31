/** The owner's EIP-712 signature over a capsule header (SPEC.md): the `Capsule` struct. */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { normalizeAddress } from '../encoding/address.ts'
import { type Hex, toHex } from '../encoding/hex.ts'
import { InvalidArgumentError } from '../errors.ts'
import { type CapsuleHeader, encodeCapsuleHeader } from '../header.ts'
import { recoverDigestSigner, signDigest } from './signature.ts'
import { hashTypedData, type TypedData, type TypedDataField } from './typed-data.ts'

/** The `Capsule` struct a wallet shows and signs. */
export const CAPSULE_TYPED_DATA_TYPES: Record<string, TypedDataField[]> = {
  Capsule: [
    { name: 'capsuleId', type: 'bytes32' },
    { name: 'owner', type: 'address' },
    { name: 'policy', type: 'address' },
    { name: 'keyguard', type: 'string' },
    { name: 'runtime', type: 'string' },
    { name: 'plaintextSize', type: 'uint64' },
    { name: 'createdAt', type: 'uint64' },
    { name: 'headerHash', type: 'bytes32' },
  ],
}

/** keccak256 of the canonical CBOR header bytes: what the signature and every chunk bind. */
export function capsuleHeaderHash(header: CapsuleHeader | Uint8Array): Uint8Array {
  return keccak_256(header instanceof Uint8Array ? header : encodeCapsuleHeader(header))
}

/**
 * The EIP-712 typed data an owner signs for `header`. Pass it to ethers as
 * `signer.signTypedData(td.domain, td.types, td.message)`.
 *
 * Domain: `{ name: 'Digicap', version: '1', chainId, verifyingContract: registry }`.
 *
 * @throws {InvalidArgumentError} if the header is not valid.
 * @example
 * ```ts
 * const td = capsuleTypedData(header)
 * const signature = await wallet.signTypedData(td.domain, td.types, td.message)
 * ```
 */
export function capsuleTypedData(header: CapsuleHeader): TypedData {
  const headerHash = capsuleHeaderHash(header)
  return {
    domain: {
      name: 'Digicap',
      version: '1',
      chainId: header.policy.chainId,
      verifyingContract: normalizeAddress(header.policy.registry, 'registry'),
    },
    types: { Capsule: CAPSULE_TYPED_DATA_TYPES.Capsule as TypedDataField[] },
    primaryType: 'Capsule',
    message: {
      capsuleId: toHex(header.capsuleId),
      owner: normalizeAddress(header.owner, 'owner'),
      policy: normalizeAddress(header.policy.policy, 'policy'),
      keyguard: header.keyguard.peerId,
      runtime: header.runtime.kind,
      plaintextSize: BigInt(header.payload.plaintextSize),
      createdAt: BigInt(header.createdAt),
      headerHash: toHex(headerHash),
    },
  }
}

/** The 32-byte EIP-712 digest of {@link capsuleTypedData}. */
export function capsuleSigningDigest(header: CapsuleHeader): Uint8Array {
  return hashTypedData(capsuleTypedData(header))
}

/**
 * Signs a header as its owner, with noble (for tools and tests; wallets use
 * {@link capsuleTypedData} with ethers or viem instead).
 *
 * @throws {InvalidArgumentError} if the header is invalid or the key does not belong to `header.owner`.
 * @example
 * ```ts
 * const signature = signCapsuleHeader(header, ownerPrivateKey)
 * ```
 */
export function signCapsuleHeader(header: CapsuleHeader, privateKey: Uint8Array | Hex): Uint8Array {
  const digest = capsuleSigningDigest(header)
  const sig = signDigest(digest, privateKey)
  const signer = recoverDigestSigner(digest, sig)
  if (signer !== normalizeAddress(header.owner, 'owner')) {
    throw new InvalidArgumentError('privateKey does not belong to header.owner', {
      details: { owner: header.owner, signer },
    })
  }
  return sig
}
