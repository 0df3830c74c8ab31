/**
 * A decision certificate (SPEC-PBFT.md §6): at least 2f+1 `Commit` signatures of distinct members over
 * (chain id, contract, job id, view, verdict, evidence hash), signers in ascending address
 * order, which is what the settlement contract checks with one ecrecover per signer.
 */
import { type Address, CapsuleSignatureError, equalBytes, toHex } from '@digicap/capsule-core'
import type { PbftVote } from '@digicap/protocol'
import { memberByAddress, type PbftCommittee } from './committee.ts'
import { CertificateError } from './errors.ts'
import { type PbftDomain, recoverVoteSigner } from './typed-data.ts'

/** The committee's decision and its proof. */
export interface PbftCertificate {
  chainId: bigint
  contract: Address
  jobId: Uint8Array
  view: bigint
  verdict: number
  evidenceHash: Uint8Array
  /** Strictly ascending (by the 20 address bytes). */
  signers: Address[]
  /** `signatures[i]` is `signers[i]`'s 65-byte `Commit` signature. */
  signatures: Uint8Array[]
}

/** What the verifier expects the certificate to be about. */
export interface CertificateExpectation {
  domain: PbftDomain
  jobId: Uint8Array
}

function addressKey(address: string): bigint {
  return BigInt(address)
}

/**
 * Builds a certificate from commit votes of one value: every distinct signer, sorted (one
 * signature each). Not only the first `quorum`: the settlement pays and rewards each signer the
 * certificate names, so a member that signed is not left out. The votes must already be verified.
 */
export function buildCertificate(
  domain: PbftDomain,
  // Kept for callers (it bounded the certificate to the committee's quorum before).
  _committee: PbftCommittee,
  commits: readonly { signer: Address; vote: PbftVote }[],
): PbftCertificate {
  const first = commits[0]
  if (first === undefined) throw new CertificateError('short', 'No commit votes')
  const bySigner = new Map<string, Uint8Array>()
  for (const { signer, vote } of commits) {
    if (!bySigner.has(signer)) bySigner.set(signer, vote.signature)
  }
  const sorted = [...bySigner.keys()].sort((a, b) => (addressKey(a) < addressKey(b) ? -1 : 1))
  return {
    chainId: domain.chainId,
    contract: domain.verifyingContract,
    jobId: first.vote.jobId,
    view: first.vote.view,
    verdict: first.vote.verdict,
    evidenceHash: first.vote.evidenceHash,
    signers: sorted as Address[],
    signatures: sorted.map((s) => bySigner.get(s) as Uint8Array),
  }
}

/**
 * Checks that `certificate` proves a decision of `committee` on `expected`'s job: right chain,
 * contract and job; at least 2f+1 signatures; signers strictly ascending (so unique); each a
 * member; each signature the signer's `Commit` over the certificate's value. Returns nothing;
 * throws on the first failed check.
 *
 * @throws {CertificateError} with `reason` `wrong-job`, `value`, `short`, `unsorted`,
 * `non-member` or `signature`.
 * @example
 * ```ts
 * verifyCertificate(cert, committee, { domain, jobId })
 * ```
 */
export function verifyCertificate(
  certificate: PbftCertificate,
  committee: PbftCommittee,
  expected: CertificateExpectation,
): void {
  const c = certificate
  if (
    c.chainId !== expected.domain.chainId ||
    typeof c.contract !== 'string' ||
    c.contract.toLowerCase() !== expected.domain.verifyingContract.toLowerCase() ||
    !(c.jobId instanceof Uint8Array) ||
    !equalBytes(c.jobId, expected.jobId)
  ) {
    throw new CertificateError('wrong-job', 'The certificate is about another job', {
      details: { jobId: c.jobId instanceof Uint8Array ? toHex(c.jobId) : typeof c.jobId },
    })
  }
  if (
    !Number.isInteger(c.verdict) ||
    c.verdict < 0 ||
    c.verdict > 7 ||
    !(c.evidenceHash instanceof Uint8Array) ||
    c.evidenceHash.length !== 32 ||
    typeof c.view !== 'bigint' ||
    c.view < 0n ||
    c.view >= 1n << 64n
  ) {
    throw new CertificateError('value', 'The certificate carries an invalid value')
  }
  if (
    !Array.isArray(c.signers) ||
    !Array.isArray(c.signatures) ||
    c.signers.length !== c.signatures.length
  ) {
    throw new CertificateError('short', 'Signers and signatures do not pair up')
  }
  if (c.signers.length < committee.quorum) {
    throw new CertificateError('short', 'The certificate has fewer than 2f+1 signatures', {
      details: { signatures: c.signers.length, quorum: committee.quorum },
    })
  }
  let previous = -1n
  for (const [i, signer] of c.signers.entries()) {
    let key: bigint
    try {
      key = addressKey(signer)
    } catch {
      throw new CertificateError('non-member', 'A signer is not an address', {
        details: { index: i },
      })
    }
    if (key <= previous) {
      throw new CertificateError('unsorted', 'Signers are not strictly ascending', {
        details: { index: i },
        hint: 'Sort signers by address and keep one signature per member.',
      })
    }
    previous = key
    if (memberByAddress(committee, signer) === undefined) {
      throw new CertificateError('non-member', 'A signer is not a committee member', {
        details: { index: i, signer },
      })
    }
  }
  for (const [i, signer] of c.signers.entries()) {
    const vote: PbftVote = {
      phase: 'commit',
      jobId: c.jobId,
      view: c.view,
      preparedView: 0n,
      verdict: c.verdict,
      evidenceHash: c.evidenceHash,
      signature: c.signatures[i] as Uint8Array,
    }
    let recovered: Address
    try {
      recovered = recoverVoteSigner(expected.domain, vote, signer as Address)
    } catch (cause) {
      if (!(cause instanceof CapsuleSignatureError)) throw cause
      throw new CertificateError('signature', 'A signature is malformed', {
        details: { index: i },
        cause,
      })
    }
    if (recovered.toLowerCase() !== signer.toLowerCase()) {
      throw new CertificateError('signature', 'A signature is not its signer’s commit', {
        details: { index: i, signer, recovered },
      })
    }
  }
}
