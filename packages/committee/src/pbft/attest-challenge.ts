/**
 * The signed attestation challenge (ADR 0095, SPEC-PBFT §9): a committee member's quote nonce
 * is the keccak-256 of its EIP-712 signature over (job, a recent block hash, a counter), under
 * the PBFT domain. Any other member can check that the nonce is a seated member's, for this
 * job, and no older than that block: a quote one member got can be forwarded to the others and
 * counted by them (an executor cannot get a free run by withholding one member's quote).
 */
import {
  type DigicapSigner,
  encodeTypedDataType,
  InvalidArgumentError,
  signTypedDataWith,
  type TypedData,
  type TypedDataField,
  toHex,
} from '@digicap/capsule-core'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { recoverSigner } from './signature-check.ts'
import {
  PBFT_DOMAIN_NAME,
  PBFT_DOMAIN_VERSION,
  type PbftDomain,
  pbftDomainSeparator,
} from './typed-data.ts'

/** `AttestChallenge(bytes32 jobId,bytes32 blockHash,uint64 seq)`: not a vote type of the hub. */
export const ATTEST_CHALLENGE_TYPES: Record<string, TypedDataField[]> = {
  AttestChallenge: [
    { name: 'jobId', type: 'bytes32' },
    { name: 'blockHash', type: 'bytes32' },
    { name: 'seq', type: 'uint64' },
  ],
}

export interface AttestChallengeFields {
  /** The job (= grant id) the quote is about. */
  jobId: Uint8Array
  /** A block of the chain the member read just before challenging: the nonce's earliest time. */
  blockHash: Uint8Array
  /** The member's counter, so two challenges in one block have distinct nonces. */
  seq: bigint
}

export interface SignedAttestChallenge extends AttestChallengeFields {
  /** The member's EIP-712 signature (`r ‖ s ‖ v`, low s). */
  signature: Uint8Array
}

const TYPE_HASH = keccak_256(
  new TextEncoder().encode(encodeTypedDataType('AttestChallenge', ATTEST_CHALLENGE_TYPES)),
)

function check(c: AttestChallengeFields): void {
  for (const field of ['jobId', 'blockHash'] as const) {
    if (!(c[field] instanceof Uint8Array) || c[field].length !== 32) {
      throw new InvalidArgumentError(`${field} must be 32 bytes`, { details: { field } })
    }
  }
  if (typeof c.seq !== 'bigint' || c.seq < 0n || c.seq >= 1n << 64n) {
    throw new InvalidArgumentError('seq must be a uint64 bigint', { details: { field: 'seq' } })
  }
}

/** What a wallet shows and signs. @throws {InvalidArgumentError} for a bad field. */
export function attestChallengeTypedData(domain: PbftDomain, c: AttestChallengeFields): TypedData {
  check(c)
  return {
    domain: {
      name: PBFT_DOMAIN_NAME,
      version: PBFT_DOMAIN_VERSION,
      chainId: domain.chainId,
      verifyingContract: domain.verifyingContract,
    },
    types: ATTEST_CHALLENGE_TYPES,
    primaryType: 'AttestChallenge',
    message: { jobId: toHex(c.jobId), blockHash: toHex(c.blockHash), seq: c.seq },
  }
}

/**
 * `keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct(challenge))`.
 * @throws {InvalidArgumentError} for a bad field.
 */
export function attestChallengeDigest(domain: PbftDomain, c: AttestChallengeFields): Uint8Array {
  check(c)
  const struct = new Uint8Array(128)
  struct.set(TYPE_HASH, 0)
  struct.set(c.jobId, 32)
  struct.set(c.blockHash, 64)
  new DataView(struct.buffer, 96 + 24, 8).setBigUint64(0, c.seq)
  const envelope = new Uint8Array(66)
  envelope[0] = 0x19
  envelope[1] = 0x01
  envelope.set(pbftDomainSeparator(domain), 2)
  envelope.set(keccak_256(struct), 34)
  return keccak_256(envelope)
}

/** The quote nonce of a signed challenge: keccak-256 of the 65 signature bytes. */
export function attestChallengeNonce(signature: Uint8Array): Uint8Array {
  return keccak_256(signature)
}

/**
 * Signs a challenge (checked: the signature recovers to the signer).
 * @throws {InvalidArgumentError} for a bad field, or what the signer throws.
 */
export async function signAttestChallenge(
  signer: DigicapSigner,
  domain: PbftDomain,
  c: AttestChallengeFields,
): Promise<SignedAttestChallenge> {
  const digest = attestChallengeDigest(domain, c)
  const signature = await signTypedDataWith(signer, attestChallengeTypedData(domain, c), (sig) =>
    recoverSigner(digest, sig),
  )
  return { jobId: c.jobId, blockHash: c.blockHash, seq: c.seq, signature }
}

/**
 * The address that signed a challenge.
 * @throws {CapsuleSignatureError} for a malformed or high-s signature.
 * @throws {InvalidArgumentError} for a bad field.
 */
export function recoverAttestChallenger(domain: PbftDomain, c: SignedAttestChallenge): string {
  return recoverSigner(attestChallengeDigest(domain, c), c.signature)
}
