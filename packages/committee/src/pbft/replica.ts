/**
 * One member's PBFT state machine for one job (SPEC-PBFT.md §5), apart from the network:
 * votes come in through {@link PbftReplica.receive}, go out through the `send` component.
 *
 * External validity (ADR 0087): each member first signs and sends its observation (the verdict
 * bits it saw). A member prepares a proposal only when the observations it holds justify every
 * bit of it (a pass: 2f+1 signed passes; a fail: f+1 signed fails or misses) and the evidence
 * hash is its own statement's for that verdict. Members that saw different runs (the executor
 * answered some and not others) still decide; f faulty members cannot fail a phase that reached
 * every honest member.
 *
 * Signatures (ADR 0047): a pre-prepare, prepare or commit that arrives from its member's
 * authenticated stream counts at once; its signature is checked when the vote is about to leave
 * the replica in something others must believe (a certificate, the prepared proof of a view
 * change, an equivocation proof). A vote whose signature then fails is dropped, reported through
 * `onFault`, and its member's later votes are checked on arrival. The member's own votes are
 * checked the same way, before use, not when signed.
 *
 * Deciding and certifying are apart (ADR 0053): `verdict` resolves at 2f+1 counted commits of one
 * value (agreement does not rest on signatures, ADR 0047); `decided`, the certificate, needs 2f+1
 * commits whose signatures hold. With `certificate: 'on-request'` only a member that asks for it
 * (`certify()`, the one that submits it) checks them.
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
import { conflicting, type EquivocationProof, SLASHABLE } from './equivocation.ts'
import { PbftVoteError, SignedVoteError } from './errors.ts'
import { PbftResender } from './retransmit.ts'
import { recoverSigner, signatureShapeHolds } from './signature-check.ts'
import type { PbftSignedVotes } from './signed-votes.ts'
import type { PbftSend } from './transport-types.ts'
import {
  type PbftDomain,
  recoverVoteSigner,
  signVote,
  type UnsignedVote,
  voteDigest,
} from './typed-data.ts'

/** The value a committee decides. */
export interface PbftValue {
  /** Bit i set = run phase i passed (0 before, 1 during, 2 after). */
  verdict: number
  /** keccak-256 of the evidence (32 bytes). */
  evidenceHash: Uint8Array
}

/**
 * When a member's vote has its signature checked (ADR 0047):
 * - `before-use`: counted on arrival (the transport authenticated the member), checked before it
 *   goes into a certificate, a view change's prepared proof or an equivocation proof;
 * - `on-arrival`: checked before it counts (a transport that does not authenticate its peers).
 *
 * View changes and the proofs votes carry are always checked on arrival.
 */
export type PbftSignatureCheck = 'before-use' | 'on-arrival'

/**
 * When a member builds (and checks the signatures of) its certificate (ADR 0053):
 * - `at-decision`: every member, as soon as it decides;
 * - `on-request`: once `certify()` is called (the member that submits it), at or after the decision.
 */
export type PbftCertificateMode = 'at-decision' | 'on-request'

/** What the committee decided: 2f+1 members committed this value in this view. */
export interface PbftDecision extends PbftValue {
  view: bigint
}

/** Where a replica's messages go (defined with the transport's types). */
export type { PbftSend }

export interface PbftReplicaOptions {
  domain: PbftDomain
  committee: PbftCommittee
  jobId: Uint8Array
  /** This member's key; its address must be a member. */
  signer: DigicapSigner
  /** The value this member computed from the evidence: its observation. */
  value: PbftValue
  /**
   * This member's evidence hash for any verdict (its statement with that verdict), or undefined
   * when it cannot back that verdict. Default: its own value's hash for its own verdict only.
   */
  evidence?: (verdict: number) => Uint8Array | undefined
  send: PbftSend
  /** Time a view may take before this member asks for the next one, ms; doubles each view. Default 2000. */
  viewTimeout?: number
  /**
   * Time between re-sends of this member's own votes of its view while it has not decided, ms
   * (a vote lost with its stream, ADR 0054); 0 = never. Default half the view timeout, at most 10 s.
   */
  resendAfter?: number
  /** Called once per member and slot caught signing two values. */
  onEquivocation?: (proof: EquivocationProof) => void
  /** When votes have their signatures checked. Default `before-use`. */
  signatureCheck?: PbftSignatureCheck
  /**
   * Told of a counted vote whose signature failed when it was about to be used
   * (`PbftVoteError` `signature`, `details.signer` the member whose stream sent it). Must not
   * throw (it is caught).
   */
  onFault?: (error: PbftVoteError) => void
  /** When the certificate is built. Default `at-decision`. */
  certificate?: PbftCertificateMode
  /**
   * This member's signed-vote record (slashing protection, ADR 0093): every vote's signature
   * goes through it, so a restarted member never signs another vote for a slot it signed (it
   * re-sends the stored one). Default: none (the replica's own state guards one run only).
   */
  signedVotes?: PbftSignedVotes
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

/** The same signed vote, byte for byte (a copy). */
function sameVote(a: PbftVote, b: PbftVote): boolean {
  return (
    a.phase === b.phase &&
    a.view === b.view &&
    a.preparedView === b.preparedView &&
    sameValue(a, b) &&
    equalBytes(a.jobId, b.jobId) &&
    equalBytes(a.signature, b.signature)
  )
}

const ZERO = new Uint8Array(32)

/** The run phases' bits: before, during, after. */
const PHASE_BITS = [1, 2, 4] as const

/** Votes that count on arrival from their member's stream (ADR 0047); the rest are proofs. */
function countsOnArrival(phase: PbftPhase): boolean {
  return phase !== 'view-change' && phase !== 'observation'
}

/** A member's PBFT replica for one job. Create, `start()`, feed `receive()`, await `decided`. */
export class PbftReplica {
  readonly #o: Required<
    Omit<
      PbftReplicaOptions,
      'onEquivocation' | 'onFault' | 'resendAfter' | 'certificate' | 'evidence' | 'signedVotes'
    >
  > &
    Pick<PbftReplicaOptions, 'onEquivocation' | 'onFault' | 'evidence' | 'signedVotes'>
  readonly #resend: PbftResender | undefined
  readonly #self: PbftMember
  #view = 0n
  #changing = false
  #timer: ReturnType<typeof setTimeout> | undefined
  #stopped = false
  /** The latest view this member prepared in (its proof is built, checked, when it is sent). */
  #prepared: Omit<Prepared, 'proof'> | undefined
  /** Votes counted on arrival whose signatures are not checked yet. */
  readonly #unchecked = new WeakSet<PbftVote>()
  /** Members caught with a bad signature: their votes are checked on arrival. */
  readonly #faulty = new Set<Address>()
  /**
   * Members that signed a view change or a new view whose proof does not hold (an honest member
   * checks its proofs before it sends them): their later ones are refused before any check.
   */
  readonly #forged = new Set<Address>()
  /** `${phase}/${view}` → signer → vote. */
  readonly #votes = new Map<string, Map<Address, PbftVote>>()
  /** view → accepted pre-prepare value. */
  readonly #accepted = new Map<bigint, PbftValue>()
  /** view → signer → view-change vote (with its proof checked). */
  readonly #viewChanges = new Map<bigint, Map<Address, Signed & { prepared?: PbftVote[] }>>()
  readonly #sent = new Set<string>()
  readonly #accused = new Set<string>()
  /** member → its observation (signature checked), the first one it sent. */
  readonly #observations = new Map<Address, PbftVote>()
  /** A view this member leads and must propose in once its observations justify a verdict. */
  #pending: { view: bigint; viewChanges: PbftVote[] } | undefined
  #resolve!: (c: PbftCertificate) => void
  #decide!: (d: PbftDecision) => void
  /** The certificate, once 2f+1 members committed one value (and it was asked for, `on-request`). */
  readonly decided: Promise<PbftCertificate>
  /** The decision, once 2f+1 members' counted commits agree on one value in one view. */
  readonly verdict: Promise<PbftDecision>
  #certificate: PbftCertificate | undefined
  #decision: PbftDecision | undefined
  /** True once the certificate is wanted (always with `at-decision`). */
  #wanted: boolean

  constructor(options: PbftReplicaOptions) {
    const self = memberByAddress(options.committee, options.signer.address)
    if (self === undefined) {
      throw new InvalidArgumentError('signer is not a committee member', {
        details: { address: options.signer.address },
      })
    }
    this.#self = self
    this.#o = { viewTimeout: 2000, signatureCheck: 'before-use', ...options }
    const every = options.resendAfter ?? Math.min(this.#o.viewTimeout / 2, 10_000)
    this.#resend = every > 0 ? new PbftResender(options.send, every) : undefined
    this.#wanted = options.certificate !== 'on-request'
    this.decided = new Promise((resolve) => {
      this.#resolve = resolve
    })
    this.verdict = new Promise((resolve) => {
      this.#decide = resolve
    })
  }

  /**
   * Asks for the certificate (the member that submits it): builds it now if the committee has
   * decided, else at the decision. It waits for 2f+1 commits whose signatures hold.
   */
  certify(): Promise<PbftCertificate> {
    if (!this.#wanted) {
      this.#wanted = true
      if (this.#decision !== undefined) this.#certify()
    }
    return this.decided
  }

  /** Nothing left to do in the protocol: the certificate is built, or decided and not wanted. */
  get #finished(): boolean {
    return this.#certificate !== undefined || (this.#decision !== undefined && !this.#wanted)
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
    this.#resend?.start(() => ({
      view: this.#view,
      done: this.#stopped || this.#finished,
    }))
    const observation = await this.#emit(
      { phase: 'observation', jobId: this.#o.jobId, view: 0n, preparedView: 0n, ...this.#o.value },
      [],
      undefined,
      true,
    )
    // None: restarted after signing another one (ADR 0093), which a pre-prepare carries back.
    if (observation !== undefined) this.#observations.set(this.#self.address, observation)
    if (leaderOf(this.#o.committee, 0n).address === this.#self.address) {
      await this.#lead(0n, [], undefined)
    }
    await this.#reconsider()
  }

  /** Stops the timer; later input is ignored. */
  stop(): void {
    this.#stopped = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#resend?.stop()
  }

  #arm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    if (this.#stopped || this.#finished) return
    const shift = this.#view > 10n ? 10n : this.#view
    const ms = this.#o.viewTimeout * 2 ** Number(shift)
    this.#timer = setTimeout(() => {
      void this.#askViewChange(this.#view + 1n).catch(() => {})
    }, ms)
    this.#timer.unref?.()
  }

  async #emit(
    vote: UnsignedVote,
    proof: PbftVote[],
    to?: PbftMember,
    standing = false,
  ): Promise<PbftVote | undefined> {
    // Before use, own votes too: a prepare or commit is checked when it goes into a proof or the
    // certificate (a view change or an observation is a proof others check: checked when signed).
    const check = this.#o.signatureCheck === 'on-arrival' || !countsOnArrival(vote.phase)
    let signed: PbftVote
    try {
      signed = await this.#sign(vote, check)
    } catch (err) {
      // Restarted after signing another vote for this slot (ADR 0093): that one stands (the
      // others hold it); this member goes on without a second. Any other refusal is thrown.
      if (err instanceof SignedVoteError && err.reason === 'conflict') return undefined
      throw err
    }
    if (!check) this.#unchecked.add(signed)
    if (this.#stopped) return signed
    this.#o.send(to, { vote: signed, proof })
    if (to === undefined) this.#resend?.sent({ vote: signed, proof }, standing)
    return signed
  }

  /**
   * Signs `vote` through the signed-vote record when there is one (ADR 0093): refused
   * (`SignedVoteError`, nothing sent) for a slot signed with another digest; the stored signature
   * for the same digest, checked against this member's address (a record is not trusted blindly).
   */
  async #sign(vote: UnsignedVote, check: boolean): Promise<PbftVote> {
    const { signer, domain, signedVotes } = this.#o
    if (signedVotes === undefined) return signVote(signer, domain, vote, { check })
    const digest = voteDigest(domain, vote)
    const slot = { domain, jobId: vote.jobId, phase: vote.phase, view: vote.view }
    const { signature, stored } = await signedVotes.sign(signer.address, slot, digest, async () => {
      return (await signVote(signer, domain, vote, { check })).signature
    })
    if (stored) {
      let recovered: Address | undefined
      try {
        recovered = recoverSigner(digest, signature)
      } catch {
        recovered = undefined
      }
      if (recovered?.toLowerCase() !== signer.address.toLowerCase()) {
        throw new SignedVoteError('corrupt', 'A stored signature is not this member’s', {
          details: { phase: vote.phase, view: String(vote.view) },
          hint: 'The signed-vote record was altered: restore it from a backup or wait until its jobs have closed.',
        })
      }
    }
    return { ...vote, signature }
  }

  /**
   * The verdict the held observations justify, fail first (ADR 0087): a phase fails with f+1
   * observations that it failed or was missed, passes with 2f+1 that it passed; undefined while
   * a phase has neither.
   */
  #justifiedVerdict(): number | undefined {
    const { f, quorum } = this.#o.committee
    let verdict = 0
    for (const bit of PHASE_BITS) {
      const { pass, fail } = this.#tally(bit)
      if (fail >= f + 1) continue
      if (pass < quorum) return undefined
      verdict |= bit
    }
    return verdict
  }

  #tally(bit: number): { pass: number; fail: number } {
    let pass = 0
    for (const o of this.#observations.values()) if ((o.verdict & bit) !== 0) pass++
    return { pass, fail: this.#observations.size - pass }
  }

  /** This member's evidence hash for `verdict`, if it can back that verdict. */
  #evidenceOf(verdict: number): Uint8Array | undefined {
    if (this.#o.evidence !== undefined) return this.#o.evidence(verdict)
    return verdict === this.#o.value.verdict ? this.#o.value.evidenceHash : undefined
  }

  /** External validity: every bit justified by held observations, the evidence this member's. */
  #valid(value: PbftValue): boolean {
    const { f, quorum } = this.#o.committee
    for (const bit of PHASE_BITS) {
      const { pass, fail } = this.#tally(bit)
      if ((value.verdict & bit) !== 0 ? pass < quorum : fail < f + 1) return false
    }
    const evidence = this.#evidenceOf(value.verdict)
    return evidence !== undefined && equalBytes(evidence, value.evidenceHash)
  }

  /**
   * Proposes in `view` (led by this member): the value `kept` from a view change, else the one the
   * held observations justify; with no such value yet, waits for more observations.
   */
  async #lead(view: bigint, viewChanges: PbftVote[], kept: PbftValue | undefined): Promise<void> {
    let value = kept
    if (value === undefined) {
      const verdict = this.#justifiedVerdict()
      const evidenceHash = verdict === undefined ? undefined : this.#evidenceOf(verdict)
      if (verdict !== undefined && evidenceHash !== undefined) value = { verdict, evidenceHash }
    }
    if (value === undefined) {
      this.#pending = { view, viewChanges }
      return
    }
    this.#pending = undefined
    // The observations justify the value to members that have not got them all yet.
    await this.#propose(view, value, [...viewChanges, ...this.#observations.values()])
  }

  /** More observations: propose if waiting to, prepare and commit what they now justify. */
  async #reconsider(): Promise<void> {
    const pending = this.#pending
    if (pending !== undefined && pending.view === this.#view) {
      await this.#lead(pending.view, pending.viewChanges, undefined)
    }
    const accepted = this.#accepted.get(this.#view)
    if (accepted !== undefined && this.#valid(accepted)) {
      await this.#vote('prepare', this.#view, accepted)
    }
    await this.#progress(this.#view)
  }

  async #propose(view: bigint, value: PbftValue, proof: PbftVote[]): Promise<void> {
    const key = `pre-prepare/${view}`
    if (this.#sent.has(key)) return
    this.#sent.add(key)
    const vote = await this.#emit(
      { phase: 'pre-prepare', jobId: this.#o.jobId, view, preparedView: 0n, ...value },
      proof,
    )
    if (vote === undefined) return
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
    if (vote === undefined) return
    await this.#onVote(this.#self, { vote, proof: [] }, true)
  }

  async #askViewChange(view: bigint): Promise<void> {
    if (this.#stopped || this.#finished || view <= this.#view) return
    const key = `view-change/${view}`
    if (this.#sent.has(key)) return
    this.#sent.add(key)
    this.#view = view
    this.#changing = true
    this.#arm()
    const p = this.#provenPrepared()
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
    if (vote === undefined) return
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
    const member = memberByAddress(this.#o.committee, from.address)
    if (member === undefined || member.peerId !== from.peerId) {
      throw new PbftVoteError('non-member', 'A vote from a peer outside this committee', {
        details: { address: from.address, peer: from.peerId },
      })
    }
    try {
      await this.#onVote(member, message, false)
    } catch (err) {
      // A copy of a vote this member holds: the sender may be missing this member's (ADR 0054).
      if (err instanceof PbftVoteError && err.reason === 'replayed') {
        this.#resend?.replayed(member, message.vote.view)
      }
      throw err
    } finally {
      // A vote of a view past the decided one: its sender missed the decision (a member that
      // opened its round after the others decided, their votes refused then). The decided
      // view's own messages let it count the commits and decide by PBFT (ADR 0056).
      const decided = this.#decision
      if (decided !== undefined && message.vote.view > decided.view) {
        this.#resend?.replayed(member, decided.view)
      }
    }
  }

  /**
   * The signer of a vote that counts on arrival (pre-prepare, prepare, commit, from a member with
   * no bad signature so far): the member whose authenticated stream sent it. Only the job and the
   * signature's shape are checked now; the rest before the vote is used (ADR 0047).
   */
  #countable(from: PbftMember, vote: PbftVote): boolean {
    return (
      this.#o.signatureCheck === 'before-use' &&
      countsOnArrival(vote.phase) &&
      !this.#faulty.has(from.address)
    )
  }

  #screen(vote: PbftVote): void {
    if (!equalBytes(vote.jobId, this.#o.jobId)) {
      throw new PbftVoteError('wrong-job', 'The vote is about another job')
    }
    if (!signatureShapeHolds(vote.signature)) {
      throw new PbftVoteError('signature', 'The vote signature is malformed')
    }
  }

  /**
   * True when `vote` is `signer`'s: own and checked votes at once, a vote counted on arrival after
   * its signature check. A failed check drops the vote from its slot, reports the fault and marks
   * the member faulty.
   */
  #holds(signer: Address, vote: PbftVote): boolean {
    if (!this.#unchecked.has(vote)) return true
    this.#unchecked.delete(vote)
    let recovered: Address | undefined
    try {
      recovered = recoverVoteSigner(this.#o.domain, vote, signer)
    } catch {
      recovered = undefined
    }
    if (recovered === signer) return true
    this.#faulty.add(signer)
    const slot = this.#votes.get(`${vote.phase}/${vote.view}`)
    if (slot?.get(signer) === vote) slot.delete(signer)
    try {
      this.#o.onFault?.(
        new PbftVoteError('signature', 'A counted vote is not signed by the member that sent it', {
          details: { signer, recovered, phase: vote.phase, view: vote.view },
        }),
      )
    } catch {
      // An observer must not break the replica.
    }
    return false
  }

  /** The first `want` of `votes` whose signatures hold (checked ones first: fewer checks). */
  #holding(votes: Signed[], want: number): Signed[] {
    const ordered = [
      ...votes.filter((v) => !this.#unchecked.has(v.vote)),
      ...votes.filter((v) => this.#unchecked.has(v.vote)),
    ]
    const out: Signed[] = []
    for (const v of ordered) {
      if (out.length >= want) break
      if (this.#holds(v.signer, v.vote)) out.push(v)
    }
    return out
  }

  /** What this member prepared, with 2f+1 prepares whose signatures hold; else undefined. */
  #provenPrepared(): Prepared | undefined {
    const p = this.#prepared
    if (p === undefined) return undefined
    const { quorum } = this.#o.committee
    const proof = this.#holding(this.#count('prepare', p.view, p.value), quorum)
    if (proof.length < quorum) return undefined
    return { ...p, proof: proof.map((s) => s.vote) }
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
    if (SLASHABLE.has(vote.phase) && conflicting(previous, vote)) {
      // An equivocation proof is believed by others: both signatures must hold.
      const before = this.#holds(signer, previous)
      if (!this.#holds(signer, vote)) {
        throw new PbftVoteError('signature', 'The vote is not signed by the member that sent it', {
          details: { signer, phase: vote.phase, view: vote.view },
        })
      }
      if (!before) {
        votes.set(signer, vote)
        return
      }
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
    if (!own && this.#holdsCopy(from.address, vote)) {
      // Re-sent (ADR 0054): dropped before the checks a view change or a new view costs.
      throw new PbftVoteError('replayed', 'A vote already counted', {
        details: { signer: from.address, phase: vote.phase, view: vote.view },
      })
    }
    if (!own && this.#forged.has(from.address) && this.#carriesProof(vote)) {
      // Caught once with a proof that did not hold: no signature check for its proofs any more.
      throw new PbftVoteError('proof', 'A member whose proof did not hold before', {
        details: { signer: from.address, phase: vote.phase, view: vote.view },
      })
    }
    if (!own && vote.phase === 'observation' && this.#observations.has(from.address)) {
      // A member has one observation (ADR 0087); a second, different one is evidence (ADR 0092).
      this.#secondObservation(from.address, vote, () => this.#check(vote, from.address))
    }
    const counted = !own && this.#countable(from, vote)
    if (counted) this.#screen(vote)
    const signer = own || counted ? from.address : this.#check(vote, from.address)
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
    if (counted) this.#unchecked.add(vote)
    switch (vote.phase) {
      case 'pre-prepare':
        return this.#onPrePrepare(signer, vote, proof, own)
      case 'view-change':
        return this.#onViewChange(signer, vote, proof, own)
      case 'observation':
        if (this.#observe(signer, vote)) await this.#reconsider()
        return
      default:
        this.#record(signer, vote)
        await this.#progress(vote.view)
    }
  }

  /** A view change, or a new view's pre-prepare: a vote whose proof costs signature checks. */
  #carriesProof(vote: PbftVote): boolean {
    return vote.phase === 'view-change' || (vote.phase === 'pre-prepare' && vote.view > 0n)
  }

  /** Marks `member` as having sent a proof that does not hold, and returns the refusal. */
  #forgedBy(member: Address, message: string, details: Record<string, unknown>): PbftVoteError {
    this.#forged.add(member)
    return new PbftVoteError('proof', message, { details: { signer: member, ...details } })
  }

  /** True when `member`'s vote in this slot is held already, identical to `vote`. */
  #holdsCopy(member: Address, vote: PbftVote): boolean {
    const held =
      vote.phase === 'view-change'
        ? this.#viewChanges.get(vote.view)?.get(member)?.vote
        : vote.phase === 'observation'
          ? this.#observations.get(member)
          : this.#votes.get(`${vote.phase}/${vote.view}`)?.get(member)
    return held !== undefined && sameVote(held, vote)
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
    if (vote.view > 0n && !own) this.#checkNewView(signer, vote, proof)
    this.#record(signer, vote)
    // After the record: only the leader's first pre-prepare of a view costs these checks.
    if (!own) this.#observeAll(proof)
    const value = { verdict: vote.verdict, evidenceHash: vote.evidenceHash }
    this.#accepted.set(vote.view, value)
    if (vote.view > this.#view || this.#changing) {
      this.#view = vote.view
      this.#changing = false
      this.#arm()
    }
    // External validity (ADR 0087): only a value the held observations justify gets a prepare.
    if (this.#valid(value)) await this.#vote('prepare', vote.view, value)
    await this.#progress(vote.view)
  }

  /**
   * Keeps `signer`'s observation (view 0, its signature checked); false when it is not new. A
   * second, different observation of a member is refused here (`#secondObservation`: evidence, ADR 0092).
   * @throws {PbftVoteError} `out-of-view` for an observation outside view 0.
   */
  #observe(signer: Address, vote: PbftVote): boolean {
    if (vote.view !== 0n) {
      throw new PbftVoteError('out-of-view', 'An observation is a view-0 vote', {
        details: { signer, view: vote.view },
      })
    }
    if (this.#observations.has(signer)) {
      if (!sameVote(this.#observations.get(signer)!, vote)) {
        this.#secondObservation(signer, vote, () => signer) // carried: its signature was checked
      }
      return false
    }
    this.#observations.set(signer, vote)
    return true
  }

  /**
   * `signer` sent (or a pre-prepare carried) a second observation other than the one held: when
   * the two conflict and both are signed by it, an equivocation the hub slashes (ADR 0092),
   * handed to `onEquivocation` once. One signature check per member at most (`signerOf`, for a
   * vote not yet checked): after it, its further observations are dropped unchecked.
   * @throws {PbftVoteError} `equivocation` always: the second observation is never kept.
   */
  #secondObservation(signer: Address, vote: PbftVote, signerOf: () => Address): never {
    const held = this.#observations.get(signer)!
    const key = `${signer}/observation`
    if (!this.#accused.has(key) && SLASHABLE.has(vote.phase) && conflicting(held, vote)) {
      this.#accused.add(key)
      let signed = false
      try {
        signed = signerOf() === signer
      } catch {
        // A bad signature proves nothing; the member's later observations stay unchecked.
      }
      if (signed) this.#o.onEquivocation?.({ member: signer, a: held, b: vote })
    }
    throw new PbftVoteError('equivocation', 'A second, different observation of a member', {
      details: { signer },
    })
  }

  /**
   * Keeps the observations a pre-prepare carries (each checked; a bad one is skipped), at most
   * one per member's worth of entries.
   */
  #observeAll(proof: PbftVote[]): void {
    const held = [...this.#observations.values()]
    const carried = proof.filter((o) => o.phase === 'observation')
    for (const o of carried.slice(0, this.#o.committee.members.length)) {
      if (held.some((h) => sameVote(h, o))) continue
      try {
        this.#observe(this.#check(o), o)
      } catch {
        // One bad entry does not void the others.
      }
    }
  }

  /**
   * A new leader's pre-prepare carries 2f+1 view changes and the highest prepared value, beside
   * the observations that justify its verdict (ADR 0087, kept by `#observeAll`): exactly 2f+1
   * view changes (an honest leader sends no more), and the first that is not a view change of
   * the view, does not recover to a member, or repeats a signer voids it, before the rest is
   * checked.
   */
  #checkNewView(leader: Address, vote: PbftVote, entries: PbftVote[]): void {
    const { quorum } = this.#o.committee
    const proof = entries.filter((e) => e.phase !== 'observation')
    if (proof.length !== quorum) {
      throw this.#forgedBy(leader, 'A new view carries 2f+1 view changes', {
        view: vote.view,
        entries: proof.length,
        quorum,
      })
    }
    const signers = new Set<Address>()
    let highest: PbftVote | undefined
    for (const [at, vc] of proof.entries()) {
      const s =
        vc.phase === 'view-change' && vc.view === vote.view ? this.#entrySigner(vc) : undefined
      if (s === undefined || signers.has(s)) {
        throw this.#forgedBy(leader, 'A new view carries a view change that does not hold', {
          view: vote.view,
          entry: at,
        })
      }
      signers.add(s)
      if (
        vc.preparedView > 0n &&
        (highest === undefined || vc.preparedView > highest.preparedView)
      ) {
        highest = vc
      }
    }
    if (highest !== undefined && !sameValue(highest, vote)) {
      throw this.#forgedBy(leader, 'The new leader did not keep the highest prepared value', {
        view: vote.view,
      })
    }
  }

  /** The member that signed a proof entry, or undefined when it is not a member's. */
  #entrySigner(vote: PbftVote): Address | undefined {
    try {
      return this.#check(vote)
    } catch {
      return undefined
    }
  }

  /**
   * Checks that `proof` is 2f+1 prepares of the view and value a view change claims: exactly
   * 2f+1 (an honest member sends no more), voided by its first entry that is not such a prepare,
   * does not recover to a member, or repeats a signer (at most 2f+1 signature checks).
   */
  #preparedProofHolds(signer: Address, vote: PbftVote, proof: PbftVote[]): void {
    if (vote.preparedView === 0n) return
    const { quorum } = this.#o.committee
    const view = vote.preparedView - 1n
    if (proof.length !== quorum) {
      throw this.#forgedBy(signer, 'A view change claims a value it cannot show prepared', {
        view: vote.view,
        entries: proof.length,
        quorum,
      })
    }
    const signers = new Set<Address>()
    for (const [at, p] of proof.entries()) {
      const s =
        p.phase === 'prepare' && p.view === view && sameValue(p, vote)
          ? this.#entrySigner(p)
          : undefined
      if (s === undefined || signers.has(s)) {
        throw this.#forgedBy(signer, 'A view change claims a value it cannot show prepared', {
          view: vote.view,
          entry: at,
        })
      }
      signers.add(s)
    }
  }

  async #onViewChange(
    signer: Address,
    vote: PbftVote,
    proof: PbftVote[],
    own: boolean,
  ): Promise<void> {
    if (!own) this.#preparedProofHolds(signer, vote, proof)
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
    // A view change that claims nothing keeps no proof (it was not checked).
    votes.set(signer, { signer, vote, prepared: vote.preparedView === 0n ? [] : proof })
    const { f, quorum } = this.#o.committee
    // f+1 members asking for a later view include an honest one: join them.
    if (vote.view > this.#view && votes.size >= f + 1 && !this.#finished) {
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
      const kept =
        highest === undefined
          ? undefined
          : { verdict: highest.verdict, evidenceHash: highest.evidenceHash }
      if (!this.#sent.has(`pre-prepare/${vote.view}`)) {
        await this.#lead(
          vote.view,
          chosen.map((c) => c.vote),
          kept,
        )
      }
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
      if (prepares.length >= quorum && this.#valid(accepted)) {
        if (this.#prepared === undefined || this.#prepared.view < view) {
          this.#prepared = { view, value: accepted }
        }
        await this.#vote('commit', view, accepted)
      }
    }
    // 2f+1 counted commits of one value decide it, whatever this member saw before.
    const commits = this.#votes.get(`commit/${view}`)
    if (this.#decision === undefined && commits !== undefined) {
      for (const vote of commits.values()) {
        if (this.#count('commit', view, vote).length < quorum) continue
        this.#decision = { view, verdict: vote.verdict, evidenceHash: vote.evidenceHash }
        if (!this.#wanted && this.#timer !== undefined) clearTimeout(this.#timer)
        this.#decide(this.#decision)
        break
      }
    }
    if (this.#decision !== undefined && this.#wanted) this.#certify()
  }

  /**
   * Builds the certificate from every commit of the decision held now whose signature holds (at
   * least 2f+1), not only the first 2f+1: each signer it names is paid and rewarded on chain.
   */
  #certify(): void {
    const d = this.#decision
    if (d === undefined || this.#certificate !== undefined) return
    const { quorum } = this.#o.committee
    // Only commits whose signatures hold go into the certificate.
    const held = this.#holding(this.#count('commit', d.view, d), Number.POSITIVE_INFINITY)
    if (held.length < quorum) return
    this.#certificate = buildCertificate(this.#o.domain, this.#o.committee, held)
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#resolve(this.#certificate)
  }
}
