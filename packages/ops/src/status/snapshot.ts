/** What the status page shows: a snapshot its owner (the pi-node) builds on request. Never secret. */

export interface HealthRow {
  name: string
  ok: boolean
  /** One line: `head 1234`, `3 peers`, `0.42 ETH`, an error code. */
  text: string
}

export interface CapsuleRow {
  cid: string
  capsuleId: string
  /** The policy contract's address. */
  policy: string
  /** Releases this keyguard served for the capsule (runs granted). */
  runsUsed: number
  /** A name from the capsule's metadata, when it has one (attacker-controlled for adopted capsules). */
  name?: string
  sealedAt?: string
}

export interface HistoryRow {
  time: string
  /** `served`, `refused`, `failed`, `accepted`. */
  outcome: string
  /** `chain` or `fast`. */
  path: string
  grantId?: string
  capsuleId?: string
  /** A refusal or failure reason, as the keyguard reported it. */
  reason?: string
}

export interface PendingRow {
  grantId: string
  capsuleId?: string
  since: string
}

export interface StatusSnapshot {
  title: string
  generatedAt: string
  health: HealthRow[]
  capsules: CapsuleRow[]
  history: HistoryRow[]
  pending: PendingRow[]
}
