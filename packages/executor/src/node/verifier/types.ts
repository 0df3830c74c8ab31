/**
 * The verifier role's interfaces (issue #16, ADR 0032): what a committee member reads and sends
 * on chain, and what the node is made of. The implementations are `ethersVerifierChain` and
 * `verifierNode`; tests and other front ends pass their own.
 */
import type { AttestationRecord, EkRoots, Phase } from '@digicap/attestation'
import type { Address, DigicapSigner } from '@digicap/capsule-core'
import type { EquivocationProof, PbftCertificate, PbftSignedVotes } from '@digicap/committee'
import type { OnchainVrfProof } from '@digicap/vrf'
import type { Libp2p } from '@libp2p/interface'

/** A job the AttestationHub opened (`JobOpened`). */
export interface OpenedJob {
  /** Job id = grant id (32 bytes). */
  readonly jobId: Uint8Array
  readonly executor: Address
  /** Last block for the certificate. */
  readonly deadline: bigint
}

/** An `AccessGranted` log: the grant id and the hash of its block. */
export interface GrantSeen {
  readonly grantId: Uint8Array
  readonly blockHash: string
}

/** What a committee judges a run against: the grant as the chain recorded it (`AccessGranted`). */
export interface JobGrant {
  /** SHA-256(runtime digest ‖ capsule header hash) of the request (ADR 0021). */
  readonly measurement: Uint8Array
  /** The run's X25519 ephemeral public key. */
  readonly ephemeralKey: Uint8Array
  readonly executor: Address
}

/** A node's NodeRegistry record, as a verifier needs it. */
export interface RegisteredNode {
  /** The libp2p peer id (multihash bytes). */
  readonly peerId: Uint8Array
  /** SHA-256 of the node's attestation record (zero: none). */
  readonly attestationKeyHash: Uint8Array
}

/** AttestationHub.Status. */
export type JobStatus = 'none' | 'open' | 'seated' | 'certified' | 'settled' | 'timed-out'

/** The calls of submitBeforeCertificate (`beforeCertificateCall` of `@digicap/committee`). */
export type BeforeCertificateCall = ReturnType<
  typeof import('@digicap/committee').beforeCertificateCall
>

/** The calls of submitCertificate (`certificateCall` of `@digicap/committee`). */
export type CertificateCall = ReturnType<typeof import('@digicap/committee').certificateCall>

/** The chain as a committee member sees it. Every method may throw the contracts' typed errors. */
export interface VerifierChain {
  readonly chainId: bigint
  /** The AttestationHub (the PBFT domain's verifying contract). */
  readonly hub: Address
  blockNumber(): Promise<number>
  /**
   * The head's number and hash: what a signed challenge names (ADR 0095). With `blockOf`, the
   * member's quote nonces are checkable and it forwards and counts forwarded answers; without
   * them it challenges with random nonces.
   */
  head?(): Promise<{ number: number; hash: Uint8Array }>
  /** The number of the block with this hash, undefined when the chain has none (ADR 0095). */
  blockOf?(hash: Uint8Array): Promise<number | undefined>
  /** `JobOpened` events in [from, to]. */
  openedJobs(from: number, to: number): Promise<OpenedJob[]>
  /**
   * `AccessGranted` grants in [from, to] (jobs this node may open), with the hash of the block
   * each is in (a grant a reorg moved is opened again).
   */
  grantsIn(from: number, to: number): Promise<GrantSeen[]>
  /** Opens the job of a grant; false when the hub refuses it (no attestation asked, opened already, expired). */
  openJob(grantId: Uint8Array): Promise<boolean>
  /**
   * The job's grant. It may wait for a lagging log index (seconds): `signal` ends the wait, a
   * stopping node must not sit it out.
   */
  grant(jobId: Uint8Array, signal?: AbortSignal): Promise<JobGrant>
  node(address: Address): Promise<RegisteredNode>
  /** The sortition seed (`seedOf`), the grant block, and the window's last block. */
  sortition(jobId: Uint8Array): Promise<{ seed: Uint8Array; grantBlock: number; lastBlock: number }>
  /** A node's stake (wei) and reputation, as the sortition reads them (NodeRegistry). */
  standing(address: Address): Promise<{ stake: bigint; reputation: bigint }>
  /** What a ticket must beat to be seated now (`cutoffOf`, ADR 0065), and whether the window closed. */
  cutoff(jobId: Uint8Array): Promise<{ full: boolean; score: bigint; closed: boolean }>
  submitTicket(jobId: Uint8Array, proof: OnchainVrfProof): Promise<void>
  /** The seats so far, leader first (ascending score), and whether the window closed. */
  seats(jobId: Uint8Array): Promise<{ members: Address[]; closed: boolean }>
  /** Seats the committee (no-op when another member did). */
  seatCommittee(jobId: Uint8Array): Promise<void>
  status(jobId: Uint8Array): Promise<JobStatus>
  /** The job's before verdict on chain (ADR 0033). */
  beforeVerdict(jobId: Uint8Array): Promise<'none' | 'pass' | 'fail'>
  /** Submits the before round's certificate (no-op when a before verdict is on chain). */
  submitBeforeCertificate(call: BeforeCertificateCall): Promise<void>
  /** Submits the certificate (no-op when one is already accepted). */
  submitCertificate(call: CertificateCall): Promise<void>
  /** Settles (no-op when settled already); `committee` ascending. */
  settle(jobId: Uint8Array, committee: readonly Address[]): Promise<void>
  /**
   * Proves a member's equivocation in `round` of `jobId`; `committee` ascending. Commits first
   * (`commitReport`) and reveals `revealDelay` blocks later (`revealEquivocation` /
   * `revealBeforeEquivocation`: the reporter's share to this account, ADR 0096; a send that
   * failed while the reveal still simulates is sent again, 3 sends at most); when the reveal
   * cannot come (no blocks, no address, its sends fail) it reports without the share
   * (`reportEquivocation`).
   * Resolves true when this call convicted it, false when the hub refused it (convicted
   * already, `AlreadyConvicted`; the job not seated).
   */
  reportEquivocation(
    jobId: Uint8Array,
    round: 'before' | 'final',
    committee: readonly Address[],
    proof: EquivocationProof,
  ): Promise<boolean>
}

/** One phase as this member saw it. */
export interface PhaseVerdict {
  readonly phase: Phase
  /** `verified`, a refusal's code (`QUOTE_RUN_PCR`, …), `record-mismatch`, or `missed`. */
  readonly verdict: string
  /** ms since the watch began. */
  readonly atMs?: number
  /**
   * Set when the phase was taken from another member's forwarded answer (ADR 0095): the member
   * whose signed challenge the quote answers.
   */
  readonly forwardedBy?: string
}

/** What this member concluded about a run. */
export interface RunEvidence {
  readonly phases: readonly PhaseVerdict[]
  /** Quotes received. */
  readonly quotes: number
  /** PBFT verdict bits: bit i = phase i passed (7 = pass). */
  readonly verdict: number
  /** keccak-256 of the evidence statement (verdict.ts). */
  readonly evidenceHash: Uint8Array
}

/** Progress of one job, as the node reports it. */
export type VerifierEvent =
  | { readonly event: 'job-opened'; readonly jobId: string; readonly executor: Address }
  | { readonly event: 'ticket'; readonly jobId: string; readonly seated: boolean }
  | {
      readonly event: 'not-selected'
      readonly jobId: string
      /** Why: the refusal of the ticket (not eligible, window closed), or `outranked`. */
      readonly reason: string
    }
  | {
      readonly event: 'committee'
      readonly jobId: string
      readonly members: readonly Address[]
      readonly leader: Address
    }
  | { readonly event: 'phase'; readonly jobId: string; readonly phase: PhaseVerdict }
  | {
      readonly event: 'decided'
      readonly jobId: string
      /** `before`: the before round (verdict 1 pass, 0 fail; ADR 0033); `final`: the run's (7 = pass). */
      readonly round: 'before' | 'final'
      readonly verdict: number
      readonly view: bigint
      readonly messages: { readonly sent: number; readonly received: number }
    }
  | {
      readonly event: 'certificate'
      readonly jobId: string
      readonly round: 'before' | 'final'
      /**
       * Whether this member's transaction landed it (else another member's had; also said by a
       * member that had not decided the round when that certificate landed: no `decided` event
       * then, ADR 0056).
       */
      readonly submitted: boolean
      /**
       * The certificate's signers, when this member built it (its turn came while the chain
       * still needed it, ADR 0053); absent when it only decided.
       */
      readonly signers?: readonly Address[]
    }
  | {
      readonly event: 'equivocation'
      readonly jobId: string
      readonly round: 'before' | 'final'
      /** The member caught signing two values in one slot. */
      readonly member: Address
      /** Whether this member's report convicted it (false: another member's did first). */
      readonly reported: boolean
      /**
       * Why the report failed to reach the chain, when it threw; an `OwnEquivocationError` when
       * `member` is this node's own address (another process signs with its key): never reported
       * by this node (ADR 0092 amendment).
       */
      readonly error?: Error
    }
  | {
      /** A forwarded answer this member did not count (ADR 0095): why, and for which phase. */
      readonly event: 'forward-refused'
      readonly jobId: string
      readonly reason: string
      readonly details?: Record<string, unknown>
    }
  | { readonly event: 'settled'; readonly jobId: string }
  | { readonly event: 'job-failed'; readonly jobId: string; readonly error: Error }

export interface VerifierNodeInit {
  /**
   * Open jobs for the grants it sees on attested capsules (anyone may), in the last `reorgBlocks`
   * blocks too: a grant a reorg moved into a block already read is opened. Default true.
   */
  readonly openJobs?: boolean
  /** Chain poll interval, ms. Default 500. */
  readonly pollMs?: number
  /** First block to watch (default: the head at start). */
  readonly fromBlock?: number
  /**
   * Blocks below the head every poll reads `JobOpened` in again, so a job that a reorg put into
   * a block already read is still found (a job is tracked once). Default 12.
   */
  readonly reorgBlocks?: number
  /** Longest a member watches a run for its three phases, ms. Default 120 000. */
  readonly watchMs?: number
  /** Pause between two challenges of a run, ms (each is a TPM quote on the executor). Default 500. */
  readonly challengeEveryMs?: number
  /** PBFT view timeout, ms (doubles each view). Default 2000. */
  readonly viewTimeoutMs?: number
  /** Longest a PBFT round may take before the member gives up on a job, ms. Default 60 000. */
  readonly decideMs?: number
  /**
   * Who certifies and submits (ADR 0053): `leader` (default: the deciding view's leader at once,
   * then the next members in leader order, one every `backupMs`, while the chain lacks it; only
   * they build the certificate) or `any` (every member, at once).
   */
  readonly submit?: 'leader' | 'any'
  /** How long each next member in leader order waits for the one before to land the certificate, ms. Default 3000. */
  readonly backupMs?: number
  /** Settle after the certificate. Default true. */
  readonly settle?: boolean
  /** Jobs whose PBFT rounds run at once (more wait for a slot). Default 8. */
  readonly maxJobs?: number
  /**
   * Send the VRF ticket in a wave set by its score against recent committees' cut-offs, and not
   * at all once the seats are full of better tickets (ADR 0065). Default true; false sends every
   * ticket at once.
   */
  readonly ticketWaves?: boolean
  /** Blocks back from the head at start in which to look for closed jobs' cut-offs. Default 2000. */
  readonly historyBlocks?: number
  /**
   * The TPM makers' CA certificates (`parseEkRoots`): an executor's record is activated only if
   * its EK certificate was issued by one of them (ADR 0069). Default none: its EK is whatever
   * key it registered.
   */
  readonly ekRoots?: EkRoots | undefined
  /**
   * Signed challenges and forwarded answers (ADR 0095): forward each answer this member verified
   * to the other members, and count theirs for a phase the executor withheld from it. Default
   * true when the chain has `head` and `blockOf`.
   */
  readonly forwarding?: boolean
  /** How long a phase this member's watch skipped waits for a forwarded answer, ms. Default 3000. */
  readonly forwardWaitMs?: number
}

export interface VerifierNodeComponents {
  readonly libp2p: Pick<
    Libp2p,
    'handle' | 'unhandle' | 'getConnections' | 'dialProtocol' | 'peerId'
  >
  readonly chain: VerifierChain
  /** This member's account: signs PBFT votes (EIP-712). */
  readonly signer: DigicapSigner
  /** The account's secp256k1 key: the VRF key (ADR 0024). */
  readonly vrfKey: Uint8Array
  /** Each job's progress. */
  readonly onEvent?: (event: VerifierEvent) => void
  /** The executor's record, when it sends none with its evidence (default: the one it sends). */
  readonly records?: (executor: Address) => AttestationRecord | undefined
  /**
   * This member's signed-vote record (slashing protection, ADR 0093): every vote is signed
   * through it, and a job's rounds are closed in it once the job settled or timed out on chain.
   * `executor-node serve --role verifier` keeps it in the data folder (`fileSignedVotes`).
   * Default: none (a restarted node may then sign another vote for a slot it signed).
   */
  readonly signedVotes?: PbftSignedVotes
}

export interface VerifierNode {
  readonly address: Address
  start(): Promise<void>
  stop(): Promise<void>
  /** Resolves once `jobId` is done here (settled, not selected or failed), with its last event. */
  finished(jobId: Uint8Array | string): Promise<VerifierEvent>
  /**
   * The certificates this node built (it submitted them, or backed up the submitter), by job id
   * (hex): the run's, or the before round's when that failed. A member that only decided has none.
   */
  readonly certificates: ReadonlyMap<string, PbftCertificate>
  /** Certificates this node's finished jobs built, before rounds included (ADR 0053: submitters only). */
  readonly certified: number
}
