/**
 * The EIP-712 structs PBFT members sign (SPEC-PBFT.md §2). One primary type per phase, so a
 * prepare signature can never be replayed as a commit. The encoder, the signature format and
 * the signer interface are capsule-core's (one copy of EIP-712 in the repository).
 */
import {
  type Address,
  type DigicapSigner,
  encodeTypedDataType,
  hashTypedDataDomain,
  InvalidArgumentError,
  normalizeAddress,
  signTypedDataWith,
  type TypedData,
  type TypedDataField,
  toHex,
} from '@digicap/capsule-core'
import { PBFT_MAX_VERDICT, type PbftPhase, type PbftVote } from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { recoverSigner } from './signature-check.ts'

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
  /** What a member saw of the run (ADR 0087); view 0. */
  Observation: VALUE_FIELDS,
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
  observation: 'Observation',
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

const TYPE_HASHES = new Map(
  Object.keys(PBFT_TYPES).map((t) => [
    t,
    keccak_256(new TextEncoder().encode(encodeTypedDataType(t, PBFT_TYPES))),
  ]),
)
/** Domain separators by `chainId:contract` (a node sees a handful of hubs). */
const SEPARATORS = new Map<string, Uint8Array>()
const MAX_SEPARATORS = 64

/** `hashStruct(EIP712Domain)` of a PBFT domain (cached: a node sees a handful of hubs). */
export function pbftDomainSeparator(domain: PbftDomain): Uint8Array {
  const key = `${domain.chainId}:${domain.verifyingContract.toLowerCase()}`
  let separator = SEPARATORS.get(key)
  if (separator === undefined) {
    separator = hashTypedDataDomain({
      name: PBFT_DOMAIN_NAME,
      version: PBFT_DOMAIN_VERSION,
      chainId: domain.chainId,
      verifyingContract: domain.verifyingContract,
    })
    if (SEPARATORS.size >= MAX_SEPARATORS) SEPARATORS.clear()
    SEPARATORS.set(key, separator)
  }
  return separator
}

const U64_END = 1n << 64n

function putWord(out: Uint8Array, word: number, raw: bigint, field: string): void {
  const value = typeof raw === 'number' && Number.isSafeInteger(raw) ? BigInt(raw) : raw
  if (typeof value !== 'bigint' || value < 0n || value >= U64_END) {
    throw new InvalidArgumentError(`typed data: ${field} is out of range for uint64`)
  }
  const view = new DataView(out.buffer, out.byteOffset + word * 32 + 24, 8)
  view.setBigUint64(0, value)
}

/**
 * The 32-byte digest a member signs for `vote`: `hashTypedData(voteTypedData(domain, vote))`,
 * computed from cached type hashes and domain separators (a vote's fields have fixed widths).
 *
 * @throws {InvalidArgumentError} for a verdict outside 0..7, a field of the wrong length, or a
 * view outside uint64.
 */
export function voteDigest(domain: PbftDomain, vote: UnsignedVote): Uint8Array {
  checkValue(vote)
  const primaryType = PRIMARY[vote.phase]
  const viewChange = vote.phase === 'view-change'
  const struct = new Uint8Array(32 * (viewChange ? 6 : 5))
  struct.set(TYPE_HASHES.get(primaryType) as Uint8Array, 0)
  struct.set(vote.jobId, 32)
  putWord(struct, 2, vote.view, 'view')
  let word = 3
  if (viewChange) putWord(struct, word++, vote.preparedView, 'preparedView')
  struct[word * 32 + 31] = vote.verdict
  struct.set(vote.evidenceHash, (word + 1) * 32)
  const envelope = new Uint8Array(66)
  envelope[0] = 0x19
  envelope[1] = 0x01
  envelope.set(pbftDomainSeparator(domain), 2)
  envelope.set(keccak_256(struct), 34)
  return keccak_256(envelope)
}

/**
 * Signs a vote with any {@link DigicapSigner} (a wallet, a KMS, a key in memory).
 * `check: false` skips the check that the signature recovers to the signer (the caller checks it
 * before the vote is used, ADR 0053); the answer is still 65 bytes with v 27/28.
 *
 * @throws {InvalidArgumentError} for a bad vote, or what the signer throws.
 * @throws {CapsuleSignatureError} if the signer answered with no signature, or (checked) with
 * another account's.
 */
export async function signVote(
  signer: DigicapSigner,
  domain: PbftDomain,
  vote: UnsignedVote,
  options: { check?: boolean } = {},
): Promise<PbftVote> {
  const digest = voteDigest(domain, vote)
  // The signer's own key is checked like a member's (a cached key, not a recovery per vote).
  const recover =
    options.check === false
      ? () => normalizeAddress(signer.address, 'signer.address')
      : (sig: Uint8Array) => recoverSigner(digest, sig)
  const signature = await signTypedDataWith(signer, voteTypedData(domain, vote), recover)
  return { ...vote, signature }
}

/**
 * The member that signed `vote` (what `ecrecover` gives on chain). `expected`, the member the
 * vote claims to be from, changes nothing since ADR 0098 (it made noble's check cheaper); it is
 * kept for callers that pass it.
 *
 * @throws {CapsuleSignatureError} for a malformed or high-s signature.
 * @throws {InvalidArgumentError} for a bad vote.
 */
export function recoverVoteSigner(
  domain: PbftDomain,
  vote: PbftVote,
  _expected?: Address,
): Address {
  return recoverSigner(voteDigest(domain, vote), vote.signature)
}
