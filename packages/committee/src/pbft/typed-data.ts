/**
 * The EIP-712 structs PBFT members sign (SPEC-PBFT.md §2). One primary type per phase, so a
 * prepare signature can never be replayed as a commit. The encoder, the signature format and
 * the signer interface are capsule-core's (one copy of EIP-712 in the repository).
 */
import {
  type Address,
  type DigicapSigner,
  hashTypedData,
  InvalidArgumentError,
  normalizeAddress,
  recoverDigestSigner,
  signTypedDataWith,
  type TypedData,
  type TypedDataField,
  toHex,
} from '@digicap/capsule-core'
import { PBFT_MAX_VERDICT, type PbftPhase, type PbftVote } from '@digicap/protocol'

/** `EIP712Domain.name` of every PBFT vote. */
export const PBFT_DOMAIN_NAME = 'DigicapPbft'
/** `EIP712Domain.version` of every PBFT vote. */
export const PBFT_DOMAIN_VERSION = '1'

/** The chain and the contract that settles the job (the certificate's verifier). */
export interface PbftDomain {
  chainId: bigint
  verifyingContract: Address
}

const VALUE_FIELDS: TypedDataField[] = [
  { name: 'jobId', type: 'bytes32' },
  { name: 'view', type: 'uint64' },
  { name: 'verdict', type: 'uint8' },
  { name: 'evidenceHash', type: 'bytes32' },
]

/** The struct of each phase. `Commit` is what a certificate's signatures sign. */
export const PBFT_TYPES: Record<string, TypedDataField[]> = {
  PrePrepare: VALUE_FIELDS,
  Prepare: VALUE_FIELDS,
  Commit: VALUE_FIELDS,
  ViewChange: [
    { name: 'jobId', type: 'bytes32' },
    { name: 'view', type: 'uint64' },
    { name: 'preparedView', type: 'uint64' },
    { name: 'verdict', type: 'uint8' },
    { name: 'evidenceHash', type: 'bytes32' },
  ],
}

const PRIMARY: Record<PbftPhase, string> = {
  'pre-prepare': 'PrePrepare',
  prepare: 'Prepare',
  commit: 'Commit',
  'view-change': 'ViewChange',
}

/** A vote before it is signed. */
export type UnsignedVote = Omit<PbftVote, 'signature'>

/**
 * Checks and normalizes a domain.
 *
 * @throws {InvalidArgumentError} for a chain id that is not a positive integer or a bad address.
 */
export function pbftDomain(chainId: bigint | number, verifyingContract: string): PbftDomain {
  const id =
    typeof chainId === 'number' && Number.isSafeInteger(chainId) ? BigInt(chainId) : chainId
  if (typeof id !== 'bigint' || id <= 0n || id >= 1n << 256n) {
    throw new InvalidArgumentError('chainId must be a positive integer', {
      details: { field: 'chainId' },
    })
  }
  return {
    chainId: id,
    verifyingContract: normalizeAddress(verifyingContract, 'verifyingContract'),
  }
}

function checkValue(vote: UnsignedVote): void {
  if (!Number.isInteger(vote.verdict) || vote.verdict < 0 || vote.verdict > PBFT_MAX_VERDICT) {
    throw new InvalidArgumentError('verdict must be an integer in 0..7', {
      details: { field: 'verdict' },
    })
  }
  for (const field of ['jobId', 'evidenceHash'] as const) {
    if (!(vote[field] instanceof Uint8Array) || vote[field].length !== 32) {
      throw new InvalidArgumentError(`${field} must be 32 bytes`, { details: { field } })
    }
  }
}

/**
 * The EIP-712 typed data of a vote: what a wallet shows and signs.
 *
 * @throws {InvalidArgumentError} for a verdict outside 0..7 or a field of the wrong length.
 */
export function voteTypedData(domain: PbftDomain, vote: UnsignedVote): TypedData {
  checkValue(vote)
  const primaryType = PRIMARY[vote.phase]
  const message: Record<string, unknown> = {
    jobId: toHex(vote.jobId),
    view: vote.view,
    verdict: BigInt(vote.verdict),
    evidenceHash: toHex(vote.evidenceHash),
  }
  if (vote.phase === 'view-change') message.preparedView = vote.preparedView
  return {
    domain: {
      name: PBFT_DOMAIN_NAME,
      version: PBFT_DOMAIN_VERSION,
      chainId: domain.chainId,
      verifyingContract: domain.verifyingContract,
    },
    types: { [primaryType]: PBFT_TYPES[primaryType] as TypedDataField[] },
    primaryType,
    message,
  }
}

/** The 32-byte digest a member signs for `vote`. */
export function voteDigest(domain: PbftDomain, vote: UnsignedVote): Uint8Array {
  return hashTypedData(voteTypedData(domain, vote))
}

/**
 * Signs a vote with any {@link DigicapSigner} (a wallet, a KMS, a key in memory).
 *
 * @throws {InvalidArgumentError} for a bad vote, or what the signer throws.
 */
export async function signVote(
  signer: DigicapSigner,
  domain: PbftDomain,
  vote: UnsignedVote,
): Promise<PbftVote> {
  const signature = await signTypedDataWith(signer, voteTypedData(domain, vote))
  return { ...vote, signature }
}

/**
 * The member that signed `vote`.
 *
 * @throws {CapsuleSignatureError} for a malformed or high-s signature.
 * @throws {InvalidArgumentError} for a bad vote.
 */
export function recoverVoteSigner(domain: PbftDomain, vote: PbftVote): Address {
  return recoverDigestSigner(voteDigest(domain, vote), vote.signature)
}
