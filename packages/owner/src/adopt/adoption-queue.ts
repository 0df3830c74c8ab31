import { InvalidArgumentError } from '@digicap/capsule-core'
import type { Logger } from '@digicap/keyguard'
import type { CapsuleAnnouncement } from '@digicap/p2p'
import {
  type AdoptCapsulesComponents,
  type AdoptCapsulesParameters,
  adoptCapsules,
} from './adopt-capsules.ts'

/**
 * Default time that earns one more adoption pass once the burst is spent. A pass scans the
 * chain's logs from the start block (`ethersCapsuleDirectory`: one `eth_getLogs` per 10 000
 * blocks) and anyone can publish an announcement naming this keyguard and owner: back-to-back
 * passes turned each forged announcement into a scan of the whole chain (ADR 0090).
 */
export const ADOPTION_PASS_SPACING_MS = 30_000
/**
 * Default passes that may start without waiting (the one at start and a seal or two after it):
 * a capsule sealed elsewhere is adopted at once unless a flood spent them.
 */
export const ADOPTION_PASS_BURST = 3

export interface AdoptionQueueInit {
  /** Time that earns one more pass, ms. Default {@link ADOPTION_PASS_SPACING_MS}. */
  passSpacingMs?: number
  /** Passes that may start without waiting. Default {@link ADOPTION_PASS_BURST}. */
  passBurst?: number
}

export interface AdoptionQueue {
  /**
   * Starts a pass, or asks for one more: it starts once the running one has ended and a pass is
   * earned (`passBurst` at first, then one per `passSpacingMs`). Any number of asks meanwhile
   * make one pass.
   */
  run(): Promise<void>
  /** Whether an announcement is for this keyguard, owner and chain (worth a pass). */
  wants(announcement: CapsuleAnnouncement): boolean
  /** Resolves when no pass is running. */
  settled(): Promise<void>
  /** Drops the pass waiting for its turn (the running one ends on its own: `settled`). */
  stop(): void
}

function whole(name: string, value: number, min: number, fallback: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`${name} must be a whole number of at least ${min}`, {
      details: { [name]: value },
      hint: `Give ${min} or more (the default is ${fallback}).`,
    })
  }
  return value
}

/**
 * Runs {@link adoptCapsules} for a keyguard daemon: at most one pass at a time, `passBurst`
 * passes at once and then one per `passSpacingMs`, and announcements heard meanwhile cause one
 * more pass, so a flood of announcements costs at most one chain scan per `passSpacingMs` (and a
 * pass unwraps only capsules the chain lists for this owner and key). Failures are logged, never
 * thrown.
 *
 * @example
 * ```ts
 * const queue = adoptionQueue({ owner, peerId, chainId }, components, logger)
 * subscribeCapsuleAnnouncements(node, (ann) => { if (queue.wants(ann)) void queue.run() })
 * ```
 * @throws {InvalidArgumentError} for a `passSpacingMs` or `passBurst` that is not a whole number
 *   (at least 0 ms, at least 1 pass).
 */
export function adoptionQueue(
  params: AdoptCapsulesParameters & { chainId: number },
  components: AdoptCapsulesComponents,
  logger: Logger,
  init: AdoptionQueueInit = {},
): AdoptionQueue {
  const spacingMs = whole(
    'passSpacingMs',
    init.passSpacingMs ?? ADOPTION_PASS_SPACING_MS,
    0,
    ADOPTION_PASS_SPACING_MS,
  )
  const burst = whole('passBurst', init.passBurst ?? ADOPTION_PASS_BURST, 1, ADOPTION_PASS_BURST)
  let running: Promise<void> | undefined
  // passes earned: a token bucket of `burst`, one more per `spacingMs`
  let tokens = burst
  let tokensAt = Date.now()
  const refill = () => {
    const now = Date.now()
    tokens = spacingMs === 0 ? burst : Math.min(burst, tokens + (now - tokensAt) / spacingMs)
    tokensAt = now
  }
  /** The one pass asked for while another ran or no pass was earned. */
  let waiting: { done: Promise<void>; cancel(): void } | undefined
  let stopped = false
  const pass = async () => {
    const { chainId: _, ...adopt } = params
    const r = await adoptCapsules(adopt, components)
    for (const capsuleId of r.adopted) logger.info('capsule adopted', { capsuleId })
    for (const f of r.failed) logger.warn('capsule not adopted', { ...f })
  }
  const start = (): Promise<void> => {
    tokens -= 1
    const current = pass()
      .catch((err) =>
        logger.warn('capsule adoption failed', { message: (err as Error)?.message ?? String(err) }),
      )
      .finally(() => {
        if (running === current) running = undefined
      })
    running = current
    return current
  }
  const run = (): Promise<void> => {
    if (stopped) return Promise.resolve()
    if (waiting) return waiting.done
    refill()
    if (running === undefined && tokens >= 1) return start()
    let timer: NodeJS.Timeout | undefined
    let goOn: (go: boolean) => void = () => {}
    const turn = new Promise<boolean>((resolve) => {
      goOn = resolve
    })
    // after the running pass (it never rejects), once a pass is earned
    void (running ?? Promise.resolve()).then(() => {
      refill()
      timer = setTimeout(() => goOn(true), Math.max(0, (1 - tokens) * spacingMs))
      timer.unref()
    })
    const next = {
      done: turn.then((go) => {
        if (waiting === next) waiting = undefined
        if (!go || stopped) return undefined
        refill()
        return start()
      }),
      cancel: () => {
        clearTimeout(timer)
        goOn(false)
      },
    }
    waiting = next
    return next.done
  }
  return {
    run,
    wants: (ann) =>
      ann.keyguardPeer === params.peerId &&
      ann.owner.toLowerCase() === params.owner.toLowerCase() &&
      ann.chainId === params.chainId,
    settled: () => running ?? Promise.resolve(),
    stop() {
      stopped = true
      waiting?.cancel()
    },
  }
}
