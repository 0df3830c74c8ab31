import type { Logger } from '@digicap/keyguard'
import type { CapsuleAnnouncement } from '@digicap/p2p'
import {
  type AdoptCapsulesComponents,
  type AdoptCapsulesParameters,
  adoptCapsules,
} from './adopt-capsules.ts'

export interface AdoptionQueue {
  /** Starts a pass (or asks for one more after the running one). */
  run(): Promise<void>
  /** Whether an announcement is for this keyguard, owner and chain (worth a pass). */
  wants(announcement: CapsuleAnnouncement): boolean
  /** Resolves when no pass is running. */
  settled(): Promise<void>
}

/**
 * Runs {@link adoptCapsules} for a keyguard daemon: at most one pass at a time, and
 * announcements heard meanwhile cause one more pass, so a flood of announcements costs at most
 * one chain scan after another (and a pass unwraps only capsules the chain lists for this
 * owner and key). Failures are logged, never thrown.
 *
 * @example
 * ```ts
 * const queue = adoptionQueue({ owner, peerId, chainId }, components, logger)
 * subscribeCapsuleAnnouncements(node, (ann) => { if (queue.wants(ann)) void queue.run() })
 * ```
 */
export function adoptionQueue(
  params: AdoptCapsulesParameters & { chainId: number },
  components: AdoptCapsulesComponents,
  logger: Logger,
): AdoptionQueue {
  let running: Promise<void> | undefined
  let again = false
  const pass = async () => {
    const { chainId: _, ...adopt } = params
    const r = await adoptCapsules(adopt, components)
    for (const capsuleId of r.adopted) logger.info('capsule adopted', { capsuleId })
    for (const f of r.failed) logger.warn('capsule not adopted', { ...f })
  }
  const run = (): Promise<void> => {
    if (running) {
      again = true
      return running
    }
    running = pass()
      .catch((err) =>
        logger.warn('capsule adoption failed', { message: (err as Error)?.message ?? String(err) }),
      )
      .finally(() => {
        running = undefined
        if (again) {
          again = false
          void run()
        }
      })
    return running
  }
  return {
    run,
    wants: (ann) =>
      ann.keyguardPeer === params.peerId &&
      ann.owner.toLowerCase() === params.owner.toLowerCase() &&
      ann.chainId === params.chainId,
    settled: () => running ?? Promise.resolve(),
  }
}
