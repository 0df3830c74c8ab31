/**
 * One member's PBFT state machine for one job (SPEC-PBFT.md §5), apart from the network:
 * votes come in through {@link PbftReplica.receive}, go out through the `send` component.
 * A member prepares only the value it computed itself (external validity), so with at most f
 * faulty members a decision is always the honest members' value.
 */
import {
  type Address,
  type DigicapSigner,
  equalBytes,
  InvalidArgumentError,
} from '@digicap/capsule-core'
import type { PbftMessage, PbftPhase, PbftVote } from '@digicap/protocol'
import { buildCertificate, type PbftCertificate } from './certificate.ts'
import { leaderOf, memberByAddress, type PbftCommittee, type PbftMember } from './committee.ts'
import { conflicting, type EquivocationProof } from './equivocation.ts'
import { PbftVoteError } from './errors.ts'
import { type PbftDomain, recoverVoteSigner, signVote, type UnsignedVote } from './typed-data.ts'

/** The value a committee decides. */
export interface PbftValue {
  /** Bit i set = run phase i passed (0 before, 1 during, 2 after). */
  verdict: number
  /** keccak-256 of the evidence (32 bytes). */
  evidenceHash: Uint8Array
}

/** Where a replica's messages go: `undefined` = every other member. */
export type PbftSend = (to: PbftMember | undefined, message: PbftMessage) => void

export interface PbftReplicaOptions {
  domain: PbftDomain
  committee: PbftCommittee
  jobId: Uint8Array
  /** This member's key; its address must be a member. */
  signer: DigicapSigner
  /** The value this member computed from the evidence. */
  value: PbftValue
  send: PbftSend
  /** Time a view may take before this member asks for the next one, ms; doubles each view. Default 2000. */
  viewTimeout?: number
  /** Called once per member and slot caught signing two values. */
  onEquivocation?: (proof: EquivocationProof) => void
}

/** Views further ahead than this are dropped (a replica keeps bounded state). */
export const MAX_VIEWS_AHEAD = 16n

interface Signed {
  signer: Address
  vote: PbftVote
}

interface Prepared {
  view: bigint
  value: PbftValue
  proof: PbftVote[]
}

function sameValue(a: PbftValue, b: PbftValue): boolean {
  return a.verdict === b.verdict && equalBytes(a.evidenceHash, b.evidenceHash)
}

const ZERO = new Uint8Array(32)

/** A member's PBFT replica for one job. Create, `start()`, feed `receive()`, await `decided`. */
export class PbftReplica {
  readonly #o: Required<Omit<PbftReplicaOptions, 'onEquivocation'>> &
    Pick<PbftReplicaOptions, 'onEquivocation'>
  readonly #self: PbftMember
  #view = 0n
  #changing = false
  #timer: ReturnType<typeof setTimeout> | undefined
  #stopped = false
  #prepared: Prepared | undefined
  /** `${phase}/${view}` → signer → vote. */
  readonly #votes = new Map<string, Map<Address, PbftVote>>()
  /** view → accepted pre-prepare value. */
  readonly #accepted = new Map<bigint, PbftValue>()
  /** view → signer → view-change vote (with its proof checked). */
  readonly #viewChanges = new Map<bigint, Map<Address, Signed & { prepared?: PbftVote[] }>>()
  readonly #sent = new Set<string>()
  readonly #accused = new Set<string>()
  #resolve!: (c: PbftCertificate) => void
  /** The certificate, once 2f+1 members committed one value. */
  readonly decided: Promise<PbftCertificate>
  #certificate: PbftCertificate | undefined

  constructor(options: PbftReplicaOptions) {
    const self = memberByAddress(options.committee, options.signer.address)
    if (self === undefined) {
      throw new InvalidArgumentError('signer is not a committee member', {
        details: { address: options.signer.address },
      })
    }
    this.#self = self
    this.#o = { viewTimeout: 2000, ...options }
    this.decided = new Promise((resolve) => {
      this.#resolve = resolve
    })
  }

  /** The view this member is in (or asking for). */
  get view(): bigint {
    return this.#view
  }

  get certificate(): PbftCertificate | undefined {
    return this.#certificate
  }

  /** Enters view 0: arms the timer, and proposes if this member leads it. */
  async start(): Promise<void> {
    this.#arm()
    if (leaderOf(this.#o.committee, 0n).address === this.#self.address) {
      await this.#propose(0n, this.#o.value, [])
    }
  }

  /** Stops the timer; later input is ignored. */
  stop(): void {
    this.#stopped = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
  }

  #arm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    if (this.#stopped || this.#certificate !== undefined) return
    const shift = this.#view > 10n ? 10n : this.#view
    const ms = this.#o.viewTimeout * 2 ** Number(shift)
    this.#timer = setTimeout(() => {
      void this.#askViewChange(this.#view + 1n).catch(() => {})
    }, ms)
    this.#timer.unref?.()
  }

  async #emit(vote: UnsignedVote, proof: PbftVote[], to?: PbftMember): Promise<PbftVote> {
    const signed = await signVote(this.#o.signer, this.#o.domain, vote)
    if (this.#stopped) return signed
    this.#o.send(to, { vote: signed, proof })
    return signed
  }

  async #propose(view: bigint, value: PbftValue, proof: PbftVote[]): Promise<void> {
    const key = `pre-prepare/${view}`
    if (this.#sent.has(key)) return
    this.#sent.add(key)
    const vote = await this.#emit(
      { phase: 'pre-prepare', jobId: this.#o.jobId, view, preparedView: 0n, ...value },
      proof,
    )
    await this.#onVote(this.#self, { vote, proof }, true)
  }

  async #vote(phase: 'prepare' | 'commit', view: bigint, value: PbftValue): Promise<void> {
    // A member that asked to leave a view votes in it no more.
    if (view !== this.#view || this.#changing) return
    const key = `${phase}/${view}`
    if (this.#sent.has(key)) return
    this.#sent.add(key)
    const vote = await this.#emit(
      { phase, jobId: this.#o.jobId, view, preparedView: 0n, ...value },
      [],
    )
    await this.#onVote(this.#self, { vote, proof: [] }, true)
  }

  async #askViewChange(view: bigint): Promise<void> {
    if (this.#stopped || this.#certificate !== undefined || view <= this.#view) return
    const key = `view-change/${view}`
    if (this.#sent.has(key)) return
    this.#sent.add(key)
    this.#view = view
    this.#changing = true
    this.#arm()
    const p = this.#prepared
    const vote = await this.#emit(
      {
        phase: 'view-change',
        jobId: this.#o.jobId,
        view,
        preparedView: p === undefined ? 0n : p.view + 1n,
        verdict: p?.value.verdict ?? 0,
        evidenceHash: p?.value.evidenceHash ?? ZERO,
      },
      p?.proof ?? [],
    )
    await this.#onVote(this.#self, { vote, proof: p?.proof ?? [] }, true)
  }

  /**
   * Handles one message from `from` (a member, authenticated by the transport).
   *
   * @throws {PbftVoteError} for a vote that is not `from`'s, not for this job, or whose proof
   * does not hold; the replica's state is unchanged.
   */
  async receive(from: PbftMember, message: PbftMessage): Promise<void> {
    if (this.#stopped) return
    await this.#onVote(from, message, false)
  }

  /** `expected`: the member the vote claims to come from (a cheaper check, same answer). */
  #check(vote: PbftVote, expected?: Address): Address {
    if (!equalBytes(vote.jobId, this.#o.jobId)) {
      throw new PbftVoteError('wrong-job', 'The vote is about another job')
    }
    let signer: Address
    try {
      signer = recoverVoteSigner(this.#o.domain, vote, expected)
    } catch (cause) {
      throw new PbftVoteError('signature', 'The vote signature does not recover', { cause })
    }
    if (memberByAddress(this.#o.committee, signer) === undefined) {
      throw new PbftVoteError('non-member', 'The vote is signed by a non-member', {
        details: { signer },
      })
    }
    return signer
  }

  /**
   * Records a vote in its slot. A second vote of the signer there is refused: `replayed` when it
   * is the same, `equivocation` (reported once) when it conflicts.
   * @throws {PbftVoteError}
   */
  #record(signer: Address, vote: PbftVote): void {
    const slot = `${vote.phase}/${vote.view}`
    let votes = this.#votes.get(slot)
    if (votes === undefined) {
      votes = new Map()
      this.#votes.set(slot, votes)
    }
    const previous = votes.get(signer)
    if (previous === undefined) {
      votes.set(signer, vote)
      return
    }
    if (vote.phase !== 'view-change' && conflicting(previous, vote)) {
      const key = `${signer}/${slot}`
      if (!this.#accused.has(key)) {
        this.#accused.add(key)
        this.#o.onEquivocation?.({ member: signer, a: previous, b: vote })
      }
      throw new PbftVoteError('equivocation', 'A second, different vote of a member in one slot', {
        details: { signer, phase: vote.phase, view: vote.view },
      })
    }
    throw new PbftVoteError('replayed', 'A vote already counted', {
      details: { signer, phase: vote.phase, view: vote.view },
    })
  }

  async #onVote(from: PbftMember, message: PbftMessage, own: boolean): Promise<void> {
    const { vote, proof } = message
    const signer = own ? this.#self.address : this.#check(vote, from.address)
    if (!own && signer !== from.address) {
      throw new PbftVoteError('signature', 'The vote is not signed by the member that sent it', {
        details: { signer, from: from.address },
      })
    }
    if (vote.view > this.#view + MAX_VIEWS_AHEAD) {
      throw new PbftVoteError('out-of-view', 'A vote too many views ahead', {
        details: { view: vote.view, current: this.#view, maxAhead: MAX_VIEWS_AHEAD },
      })
    }
    switch (vote.phase) {
      case 'pre-prepare':
        return this.#onPrePrepare(signer, vote, proof, own)
      case 'view-change':
        return this.#onViewChange(signer, vote, proof, own)
      default:
        this.#record(signer, vote)
        await this.#progress(vote.view)
    }
  }

  async #onPrePrepare(
    signer: Address,
    vote: PbftVote,
    proof: PbftVote[],
    own: boolean,
  ): Promise<void> {
    const { committee } = this.#o
    if (leaderOf(committee, vote.view).address !== signer) {
      throw new PbftVoteError(
        'not-leader',
        'A pre-prepare from a member that does not lead its view',
        {
          details: { view: vote.view },
        },
      )
    }
    if (vote.view < this.#view) {
      throw new PbftVoteError('out-of-view', 'A pre-prepare for a view this member has left', {
        details: { view: vote.view, current: this.#view },
      })
    }
    if (vote.view > 0n && !own) this.#checkNewView(vote, proof)
    this.#record(signer, vote)
    const value = { verdict: vote.verdict, evidenceHash: vote.evidenceHash }
    this.#accepted.set(vote.view, value)
    if (vote.view > this.#view || this.#changing) {
      this.#view = vote.view
      this.#changing = false
      this.#arm()
    }
    // External validity: only the value this member computed itself gets its prepare.
    if (sameValue(value, this.#o.value)) await this.#vote('prepare', vote.view, value)
    await this.#progress(vote.view)
  }

  /** A new leader's pre-prepare carries 2f+1 view changes and the highest prepared value. */
  #checkNewView(vote: PbftVote, proof: PbftVote[]): void {
    const signers = new Set<Address>()
    let highest: PbftVote | undefined
    for (const vc of proof) {
      if (vc.phase !== 'view-change' || vc.view !== vote.view) continue
      const s = this.#check(vc)
      signers.add(s)
      if (
        vc.preparedView > 0n &&
        (highest === undefined || vc.preparedView > highest.preparedView)
      ) {
        highest = vc
      }
    }
    if (signers.size < this.#o.committee.quorum) {
      throw new PbftVoteError('proof', 'A new view needs 2f+1 view changes', {
        details: { view: vote.view, viewChanges: signers.size },
      })
    }
    if (highest !== undefined && !sameValue(highest, vote)) {
      throw new PbftVoteError('proof', 'The new leader did not keep the highest prepared value', {
        details: { view: vote.view },
      })
    }
  }

  /** Checks that `proof` is 2f+1 prepares of the view and value a view change claims. */
  #preparedProofHolds(vote: PbftVote, proof: PbftVote[]): boolean {
    if (vote.preparedView === 0n) return true
    const view = vote.preparedView - 1n
    const signers = new Set<Address>()
    for (const p of proof) {
      if (p.phase !== 'prepare' || p.view !== view || !sameValue(p, vote)) continue
      try {
        signers.add(this.#check(p))
      } catch {
        // One bad entry does not void the others.
      }
    }
    return signers.size >= this.#o.committee.quorum
  }

  async #onViewChange(
    signer: Address,
    vote: PbftVote,
    proof: PbftVote[],
    own: boolean,
  ): Promise<void> {
    if (!own && !this.#preparedProofHolds(vote, proof)) {
      throw new PbftVoteError('proof', 'A view change claims a value it cannot show prepared')
    }
    let votes = this.#viewChanges.get(vote.view)
    if (votes === undefined) {
      votes = new Map()
      this.#viewChanges.set(vote.view, votes)
    }
    if (votes.has(signer)) {
      throw new PbftVoteError('replayed', 'A view change already counted', {
        details: { signer, view: vote.view },
      })
    }
    votes.set(signer, { signer, vote, prepared: proof })
    const { f, quorum } = this.#o.committee
    // f+1 members asking for a later view include an honest one: join them.
    if (vote.view > this.#view && votes.size >= f + 1 && this.#certificate === undefined) {
      await this.#askViewChange(vote.view)
    }
    if (
      votes.size >= quorum &&
      leaderOf(this.#o.committee, vote.view).address === this.#self.address &&
      vote.view >= this.#view
    ) {
      const chosen = [...votes.values()].slice(0, quorum)
      let highest: PbftVote | undefined
      for (const { vote: vc } of chosen) {
        if (
          vc.preparedView > 0n &&
          (highest === undefined || vc.preparedView > highest.preparedView)
        ) {
          highest = vc
        }
      }
      const value =
        highest === undefined
          ? this.#o.value
          : { verdict: highest.verdict, evidenceHash: highest.evidenceHash }
      await this.#propose(
        vote.view,
        value,
        chosen.map((c) => c.vote),
      )
    }
  }

  #count(phase: PbftPhase, view: bigint, value: PbftValue): Signed[] {
    const votes = this.#votes.get(`${phase}/${view}`)
    if (votes === undefined) return []
    return [...votes.entries()]
      .filter(([, v]) => sameValue(v, value))
      .map(([signer, vote]) => ({ signer, vote }))
  }

  async #progress(view: bigint): Promise<void> {
    if (this.#certificate !== undefined) return
    const { quorum } = this.#o.committee
    const accepted = this.#accepted.get(view)
    if (accepted !== undefined) {
      const prepares = this.#count('prepare', view, accepted)
      if (prepares.length >= quorum && sameValue(accepted, this.#o.value)) {
        if (this.#prepared === undefined || this.#prepared.view < view) {
          this.#prepared = {
            view,
            value: accepted,
            proof: prepares.slice(0, quorum).map((p) => p.vote),
          }
        }
        await this.#vote('commit', view, accepted)
      }
    }
    // 2f+1 commits of one value decide it, whatever this member saw before.
    const commits = this.#votes.get(`commit/${view}`)
    if (commits === undefined) return
    for (const vote of commits.values()) {
      const same = this.#count('commit', view, vote)
      if (same.length >= quorum) {
        this.#certificate = buildCertificate(this.#o.domain, this.#o.committee, same)
        if (this.#timer !== undefined) clearTimeout(this.#timer)
        this.#resolve(this.#certificate)
        return
      }
    }
  }
}
