/**
 * Re-sending a member's own votes (SPEC-PBFT.md §4, ADR 0054). A frame the transport counted as
 * sent can still be lost: libp2p's abort drops what is in a stream's write buffer, and a receiver
 * ends a stream whose frame stalls, losing the frames behind it. One lost prepare or commit with
 * f members silent stalls the committee until the view-change timeout. So a member that has not
 * decided re-sends its own messages of its current view every `every` ms, and a member that
 * decided (its timer stopped) and is sent a vote it already holds answers that member with its
 * own messages of that view, at most once per `every`: the laggard finishes too. Receivers drop
 * the copies (`replayed`) before any signature check.
 */
import type { PbftMessage } from '@digicap/protocol'
import type { PbftMember } from './committee.ts'
import type { PbftSend } from './transport-types.ts'

/** What the re-sender needs to know of its replica. */
export interface PbftResendState {
  /** The view the member is in. */
  view: bigint
  /** Decided or stopped: nothing left to push. */
  done: boolean
}

/** Own messages of views further behind the newest than this are forgotten. */
const VIEWS_KEPT = 2n

/** A member's own messages, re-sent on a timer while undecided and to members that re-send. */
export class PbftResender {
  readonly #send: PbftSend
  readonly #every: number
  /** view → this member's own messages of that view, in the order sent. */
  readonly #own = new Map<bigint, PbftMessage[]>()
  /** Own messages re-sent whatever the view (the member's observation, ADR 0087). */
  readonly #standing: PbftMessage[] = []
  /** peer id → when this member last answered its re-sent vote (ms). */
  readonly #answered = new Map<string, number>()
  #timer: ReturnType<typeof setInterval> | undefined
  #state: (() => PbftResendState) | undefined

  /** `every`: ms between re-sends (and between answers to one member). */
  constructor(send: PbftSend, every: number) {
    this.#send = send
    this.#every = every
  }

  /**
   * Records one of the member's own messages sent to every other member; `standing`: re-sent in
   * every view, not only its own.
   */
  sent(message: PbftMessage, standing = false): void {
    if (standing) {
      this.#standing.push(message)
      return
    }
    const view = message.vote.view
    const list = this.#own.get(view)
    if (list === undefined) this.#own.set(view, [message])
    else list.push(message)
    for (const v of this.#own.keys()) if (v + VIEWS_KEPT < view) this.#own.delete(v)
  }

  /** Re-sends the member's own messages of its current view every `every` ms until `done`. */
  start(state: () => PbftResendState): void {
    this.stop()
    this.#state = state
    this.#timer = setInterval(() => {
      const now = state()
      if (now.done) {
        this.stop()
        return
      }
      for (const message of [...this.#standing, ...(this.#own.get(now.view) ?? [])]) {
        this.#send(undefined, message)
      }
    }, this.#every)
    this.#timer.unref?.()
  }

  /**
   * `from` sent a vote of `view` this member already holds: it may be missing this member's
   * votes of that view. A member that decided answers it with them, at most once per `every`;
   * one that has not re-sends them on its timer anyway.
   */
  replayed(from: PbftMember, view: bigint): void {
    const own = this.#own.get(view)
    if (own === undefined || this.#state?.().done !== true) return
    const now = Date.now()
    const last = this.#answered.get(from.peerId)
    if (last !== undefined && now - last < this.#every) return
    this.#answered.set(from.peerId, now)
    for (const message of [...this.#standing, ...own]) this.#send(from, message)
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }
}
