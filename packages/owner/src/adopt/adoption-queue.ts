import { InvalidArgumentError } from '@digicap/capsule-core'
import type { Logger } from '@digicap/keyguard'
import type { CapsuleAnnouncement } from '@digicap/p2p'
import {
  type AdoptCapsulesComponents,
  type AdoptCapsulesParameters,
  adoptCapsules,
} from './adopt-capsules.ts'

/**
 * Default least time between the starts of two adoption passes. A pass scans the chain's logs
 * from the start block (`ethersCapsuleDirectory`: one `eth_getLogs` per 10 000 blocks) and anyone
 * can publish an announcement naming this keyguard and owner: back-to-back passes turned each
 * forged announcement into a scan of the whole chain (ADR 0090).
 */
export const ADOPTION_PASS_SPACING_MS = 30_000

export interface AdoptionQueueInit {
  /** Least time between the starts of two passes, ms. Default {@link ADOPTION_PASS_SPACING_MS}. */
  passSpacingMs?: number
}

export interface AdoptionQueue {
  /**
   * Starts a pass, or asks for one more: it starts once the running one has ended and
   * `passSpacingMs` have gone by since that one started. Any number of asks meanwhile make
   * one pass.
   */
  run(): Promise<void>
  /** Whether an announcement is for this keyguard, owner and chain (worth a pass). */
  wants(announcement: CapsuleAnnouncement): boolean
  /** Resolves when no pass is running. */
  settled(): Promise<void>
  /** Drops the pass waiting for its turn (the running one ends on its own: `settled`). */
  stop(): void
}

/**
 * Runs {@link adoptCapsules} for a keyguard daemon: at most one pass at a time, passes started
 * at least `passSpacingMs` apart, and announcements heard meanwhile cause one more pass, so a
 * flood of announcements costs at most one chain scan per `passSpacingMs` (and a pass unwraps
 * only capsules the chain lists for this owner and key). Failures are logged, never thrown.
 *
 * @example
 * ```ts
 * const queue = adoptionQueue({ owner, peerId, chainId }, components, logger)
 * subscribeCapsuleAnnouncements(node, (ann) => { if (queue.wants(ann)) void queue.run() })
 * ```
 * @throws {InvalidArgumentError} for a `passSpacingMs` that is not a whole number of ms.
 */
export function adoptionQueue(
  params: AdoptCapsulesParameters & { chainId: number },
  components: AdoptCapsulesComponents,
  logger: Logger,
  init: AdoptionQueueInit = {},
): AdoptionQueue {
  const spacingMs = init.passSpacingMs ?? ADOPTION_PASS_SPACING_MS
  if (!Number.isSafeInteger(spacingMs) || spacingMs < 0) {
    throw new InvalidArgumentError('passSpacingMs must be a whole number of milliseconds', {
      details: { passSpacingMs: spacingMs },
      hint: `Give 0 or more (the default is ${ADOPTION_PASS_SPACING_MS}).`,
    })
  }
  let running: Promise<void> | undefined
  let lastStarted = Number.NEGATIVE_INFINITY
  /** The one pass asked for while another ran or the spacing was not up. */
  let waiting: { done: Promise<void>; cancel(): void } | undefined
  let stopped = false
  const pass = async () => {
    const { chainId: _, ...adopt } = params
    const r = await adoptCapsules(adopt, components)
    for (const capsuleId of r.adopted) logger.info('capsule adopted', { capsuleId })
    for (const f of r.failed) logger.warn('capsule not adopted', { ...f })
  }
  const start = (): Promise<void> => {
    lastStarted = Date.now()
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
    if (running === undefined && Date.now() - lastStarted >= spacingMs) return start()
    let timer: NodeJS.Timeout | undefined
    let goOn: (go: boolean) => void = () => {}
    const turn = new Promise<boolean>((resolve) => {
      goOn = resolve
    })
    // after the running pass (it never rejects), once the spacing since its start is up
    void (running ?? Promise.resolve()).then(() => {
      timer = setTimeout(() => goOn(true), Math.max(0, lastStarted + spacingMs - Date.now()))
      timer.unref()
    })
    const next = {
      done: turn.then((go) => {
        if (waiting === next) waiting = undefined
        return go && !stopped ? start() : undefined
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
