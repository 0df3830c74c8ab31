/**
 * Slashing protection (ADR 0093): a member never signs two different votes for one slot, even
 * across a crash and restart. Every vote a {@link PbftReplica} signs goes through the injected
 * {@link PbftSignedVotes} record: the slot's digest is made durable before the signer is asked, the
 * signature after, and only then does the vote leave. A second request for the same digest gets
 * the stored signature back (a restarted member resumes its round); a different digest is
 * refused with {@link SignedVoteError} `conflict` and nothing is sent.
 *
 * {@link SignedVoteBook} holds the logic over a `persist` hook; {@link memorySignedVotes} keeps it
 * in memory (tests, one process), a node keeps it in its data folder (`@digicap/executor`'s
 * `fileSignedVotes`).
 */
import { type Address, hexToBytes, toHex } from '@digicap/capsule-core'
import type { PbftPhase } from '@digicap/protocol'
import { SignedVoteError } from './errors.ts'
import type { PbftDomain } from './typed-data.ts'

/** What the hub slashes one signature per (ADR 0092): the hub, the round, the phase, the view. */
export interface PbftVoteSlot {
  readonly domain: PbftDomain
  /** The round's id (the job id, or the before round's). */
  readonly jobId: Uint8Array
  readonly phase: PbftPhase
  readonly view: bigint
  /**
   * The job the round is of, when it is not `jobId` itself (a before round): kept with the slot so
   * a restarted member can ask the chain whether the job ended (ADR 0093 amendment, helper 136).
   */
  readonly job?: Uint8Array | undefined
}

/** A slot's record: the digest signed and, once the signer answered, its signature. */
export interface SignedVoteEntry {
  /** `slotKey(slot)`. */
  readonly slot: string
  /** The round id, 0x-hex (what {@link PbftSignedVotes.close} names). */
  readonly round: string
  /** The EIP-712 digest signed, 0x-hex. */
  readonly digest: string
  /**
   * The round's job, 0x-hex; undefined in a slot recorded before it was kept (a version-1 file
   * whose job could not be told): such a slot is pruned only once its round is closed.
   */
  readonly job?: string | undefined
  /** 0x-hex, or undefined while the signer has not answered (a crash there sent nothing). */
  signature?: string | undefined
}

/**
 * One change of the record, in the order made (what an append-only store writes): a slot's entry
 * set (its digest, then the same entry with its signature), or rounds closed.
 */
export type SignedVoteChange =
  | { readonly op: 'slot'; readonly entry: SignedVoteEntry }
  | { readonly op: 'close'; readonly rounds: readonly string[] }

/** The whole record: what a store writes. */
export interface SignedVoteSnapshot {
  /** The member whose record it is. */
  readonly signer: Address
  readonly entries: readonly SignedVoteEntry[]
  /** Rounds closed (settled or timed-out jobs), oldest first: nothing is signed for them again. */
  readonly closed: readonly string[]
}

/** A signature the record gave: `stored` when it was signed before (re-sent, not signed again). */
export interface GuardedSignature {
  readonly signature: Uint8Array
  readonly stored: boolean
}

/** Where a member's signed votes are kept: the one gate every vote's signature goes through. */
export interface PbftSignedVotes {
  /**
   * The signature of `digest` for `slot` by `signer`: `sign()`'s, after the digest is durable
   * (and the signature stored before it is returned); the stored one when this digest was signed
   * for this slot before.
   * @throws {SignedVoteError} `conflict` (another digest is recorded for the slot), `closed`,
   * `full`, `identity`, `corrupt`, `io`; the vote must not be sent.
   */
  sign(
    signer: Address,
    slot: PbftVoteSlot,
    digest: Uint8Array,
    sign: () => Promise<Uint8Array>,
  ): Promise<GuardedSignature>
  /**
   * Forgets the slots of `roundIds` (their job settled or timed out on chain) and refuses any
   * later signature for them (`closed`).
   */
  close(roundIds: readonly Uint8Array[]): Promise<void>
  /**
   * How many slots of rounds not yet closed the record holds: more than 0 at a start means the
   * member stopped in the middle of a job (a host then looks back for its seats).
   */
  openSlots?(): number
  /**
   * The jobs the open slots are of, 0x-hex, each once: what a restarted member asks the chain
   * about (a job that ended while it was down is closed, one still open is rejoined). A slot with
   * no job recorded names its round, the job's own id for a job's final round.
   */
  openJobs?(): string[]
}

/** Slots of open rounds a record holds at most, by default (about ten per job). */
export const SIGNED_VOTES_MAX_ENTRIES = 4096
/** Closed rounds a record remembers, by default (the oldest are forgotten past it). */
export const SIGNED_VOTES_MAX_CLOSED = 1024

/** The slot as the record names it: chain, hub, round, phase, view. */
export function slotKey(slot: PbftVoteSlot): string {
  const { domain } = slot
  return `${domain.chainId}:${domain.verifyingContract.toLowerCase()}:${toHex(slot.jobId)}:${slot.phase}:${slot.view}`
}

export interface SignedVoteBookOptions {
  /**
   * Makes a snapshot durable (written and flushed) before it resolves. With `append`, not called
   * for a change.
   */
  readonly persist: (snapshot: SignedVoteSnapshot) => Promise<void>
  /**
   * Makes one change durable before it resolves, in place of `persist` (an append-only store:
   * one small write per change instead of the whole record). The book's state already holds the
   * change when it is called.
   */
  readonly append?: ((change: SignedVoteChange) => Promise<void>) | undefined
  /** Default {@link SIGNED_VOTES_MAX_ENTRIES}. */
  readonly maxEntries?: number
  /** Default {@link SIGNED_VOTES_MAX_CLOSED}. */
  readonly maxClosed?: number
}

/**
 * The record's logic over a durable `persist`: one change at a time (a second vote waits for the
 * first one's write), each persisted whole before the signer is asked or a signature returned.
 */
export class SignedVoteBook implements PbftSignedVotes {
  readonly #signer: Address
  readonly #entries = new Map<string, SignedVoteEntry>()
  readonly #closed: string[]
  readonly #closedSet: Set<string>
  readonly #o: Required<Omit<SignedVoteBookOptions, 'append'>> &
    Pick<SignedVoteBookOptions, 'append'>
  #queue: Promise<unknown> = Promise.resolve()
  /** A write failed: what is on disk is unknown, so nothing more is signed. */
  #broken: SignedVoteError | undefined

  constructor(snapshot: SignedVoteSnapshot, options: SignedVoteBookOptions) {
    this.#signer = snapshot.signer.toLowerCase() as Address
    for (const e of snapshot.entries) this.#entries.set(e.slot, { ...e })
    this.#closed = [...snapshot.closed]
    this.#closedSet = new Set(this.#closed)
    this.#o = {
      maxEntries: SIGNED_VOTES_MAX_ENTRIES,
      maxClosed: SIGNED_VOTES_MAX_CLOSED,
      ...options,
    }
  }

  openSlots(): number {
    return this.#entries.size
  }

  openJobs(): string[] {
    return [...new Set([...this.#entries.values()].map((e) => e.job ?? e.round))]
  }

  /** The record as it stands (a copy). */
  snapshot(): SignedVoteSnapshot {
    return {
      signer: this.#signer,
      entries: [...this.#entries.values()].map((e) => ({ ...e })),
      closed: [...this.#closed],
    }
  }

  sign(
    signer: Address,
    slot: PbftVoteSlot,
    digest: Uint8Array,
    sign: () => Promise<Uint8Array>,
  ): Promise<GuardedSignature> {
    return this.#serial(() => this.#sign(signer, slot, digest, sign))
  }

  close(roundIds: readonly Uint8Array[]): Promise<void> {
    return this.#serial(async () => {
      const rounds = roundIds.map((id) => toHex(id))
      for (const round of rounds) {
        if (this.#closedSet.has(round)) continue
        this.#closed.push(round)
        this.#closedSet.add(round)
      }
      while (this.#closed.length > this.#o.maxClosed) {
        this.#closedSet.delete(this.#closed.shift() as string)
      }
      const set = new Set<string>(rounds)
      for (const [key, e] of this.#entries) if (set.has(e.round)) this.#entries.delete(key)
      await this.#persist({ op: 'close', rounds })
    })
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work)
    this.#queue = run.catch(() => {})
    return run
  }

  async #sign(
    signer: Address,
    slot: PbftVoteSlot,
    digest: Uint8Array,
    sign: () => Promise<Uint8Array>,
  ): Promise<GuardedSignature> {
    if (this.#broken !== undefined) throw this.#broken
    if (signer.toLowerCase() !== this.#signer) {
      throw new SignedVoteError('identity', "The signed-vote record is another member's", {
        details: { record: this.#signer, signer },
        hint: "Each verifier key has its own record: use the data folder of this key, or this folder's key.",
      })
    }
    const key = slotKey(slot)
    const round = toHex(slot.jobId)
    const hex = toHex(digest)
    if (this.#closedSet.has(round)) {
      throw new SignedVoteError('closed', 'The round is closed: its job was settled or timed out', {
        details: { round, phase: slot.phase, view: String(slot.view) },
      })
    }
    const held = this.#entries.get(key)
    if (held !== undefined && held.digest !== hex) {
      throw new SignedVoteError('conflict', 'This member signed another vote for this slot', {
        details: {
          round,
          phase: slot.phase,
          view: String(slot.view),
          signed: held.digest,
          asked: hex,
        },
        hint: 'Signing it would be an equivocation the hub slashes; the vote is not sent (a restarted verifier keeps its first vote).',
      })
    }
    if (held?.signature !== undefined) {
      return { signature: hexToBytes(held.signature as `0x${string}`), stored: true }
    }
    if (held === undefined) {
      if (this.#entries.size >= this.#o.maxEntries) {
        throw new SignedVoteError('full', 'The signed-vote record holds its most open slots', {
          details: { entries: this.#entries.size, max: this.#o.maxEntries },
          hint: 'Rounds are pruned once their job settles or times out on chain; let the open jobs end, or raise maxEntries.',
        })
      }
      const job = slot.job === undefined ? round : toHex(slot.job)
      const entry: SignedVoteEntry = { slot: key, round, digest: hex, job }
      this.#entries.set(key, entry)
      try {
        await this.#persist({ op: 'slot', entry: { ...entry } })
      } catch (err) {
        this.#entries.delete(key)
        throw err
      }
    }
    // The digest is durable: whatever happens now, this slot can only ever get this digest.
    const signature = await sign()
    const entry = this.#entries.get(key) as SignedVoteEntry
    entry.signature = toHex(signature)
    await this.#persist({ op: 'slot', entry: { ...entry } })
    return { signature, stored: false }
  }

  async #persist(change: SignedVoteChange): Promise<void> {
    try {
      if (this.#o.append !== undefined) await this.#o.append(change)
      else await this.#o.persist(this.snapshot())
    } catch (cause) {
      this.#broken =
        cause instanceof SignedVoteError
          ? cause
          : new SignedVoteError('io', 'The signed-vote record could not be written', {
              cause,
              hint: 'Free space or fix the permissions of the data folder, then restart the verifier.',
            })
      throw this.#broken
    }
  }
}

/**
 * A record in memory only: guards the votes of one process (several rounds, replicas re-created)
 * but not a restart. A node keeps its record in its data folder.
 */
export function memorySignedVotes(
  signer: Address,
  options: Omit<SignedVoteBookOptions, 'persist'> = {},
): SignedVoteBook {
  return new SignedVoteBook(
    { signer, entries: [], closed: [] },
    {
      ...options,
      persist: async () => {},
    },
  )
}

/**
 * `record` for the rounds of one job: each slot it signs names `job` (so a before round's slots
 * can be pruned by asking the chain about the job, ADR 0093 amendment).
 */
export function signedVotesOfJob(record: PbftSignedVotes, job: Uint8Array): PbftSignedVotes {
  return {
    sign: (signer, slot, digest, sign) => record.sign(signer, { ...slot, job }, digest, sign),
    close: (roundIds) => record.close(roundIds),
  }
}
