/** What tells the network a capsule exists. */
import type { CapsuleAnnouncement } from '@digicap/p2p'

/** What an announcement did. Never an exception: a capsule is published without it. */
export interface AnnounceOutcome {
  ok: boolean
  /** Peers the announcement went to. */
  recipients?: number
  /** Why it was not sent (an error code, or the announcer's own reason). */
  reason?: string
}

export interface Announcer {
  /** Announces the capsule; never throws. */
  announce(announcement: CapsuleAnnouncement): Promise<AnnounceOutcome>
}
