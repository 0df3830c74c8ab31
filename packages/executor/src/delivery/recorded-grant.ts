/**
 * The grant id a fast-path audit was recorded under (ADR 0073). Apart from `grants.ts`, which
 * loads ethers: a run reaches this through its `ExecutorChain`, and ethers stays off the
 * one-shot path until a chain client needs it.
 */
import { equalBytes } from '@digicap/capsule-core'
import { type GrantRecord, grantIdOf, type ResultDomain } from '@digicap/protocol'

/** What {@link findRecordedGrant} reads of the AccessController. */
export interface RecordedGrantReader {
  /** The grant as stored, or undefined when the chain has none. */
  getGrant(grantId: Uint8Array): Promise<GrantRecord | undefined>
  /** Grants made so far for the capsule (chain and fast path): the next run index. */
  runCount(capsuleId: Uint8Array): Promise<bigint>
}

export interface FindRecordedGrantParameters {
  /** The chain and AccessController (the grant id's domain). */
  readonly domain: ResultDomain
  readonly capsuleId: Uint8Array
  /** The executor's address, 20 bytes. */
  readonly executor: Uint8Array
  /** The run's ephemeral X25519 public key (one run, one key: at most one grant has it). */
  readonly ephemeralKey: Uint8Array
  /** The measurement of the access request. */
  readonly measurement: Uint8Array
  /** The grant id the keyguard answered on the fast path. */
  readonly grantId: Uint8Array
  /** How long to wait for the keyguard's audit record to be mined, ms. Default 30 000. */
  readonly waitMs?: number | undefined
  /** Poll interval of that wait, ms. Default 500. */
  readonly pollMs?: number | undefined
  readonly signal?: AbortSignal | undefined
}

/** Run indexes below the chain's run count looked at for the recorded grant. */
const MAX_INDEXES = 64

/**
 * The grant id under which the chain recorded a fast-path grant (ADR 0073). The keyguard
 * answers with the id of the run index it read; its audit record is stored at the run index the
 * chain has when it is mined, higher when a grant landed first (a chain-path grant mined ahead
 * of it in one block, or the audit recorded as an overrun), and the grant id binds that index.
 * Looks up the answered id, then the ids of the same request (capsule, executor, ephemeral key,
 * measurement) at the indexes above the answered one up to the chain's run count (at most 64),
 * polling until `waitMs` for the audit to be mined. Undefined when no such grant is on chain.
 *
 * @throws whatever `reader` throws (the chain cannot be asked), or the signal's reason.
 * @example
 * ```ts
 * const grantId = (await findRecordedGrant(chain, { domain, capsuleId, executor, ephemeralKey, measurement, grantId: answered })) ?? answered
 * ```
 */
export async function findRecordedGrant(
  reader: RecordedGrantReader,
  p: FindRecordedGrantParameters,
): Promise<Uint8Array | undefined> {
  const deadline = Date.now() + (p.waitMs ?? 30_000)
  const pollMs = p.pollMs ?? 500
  const at = (runIndex: bigint): Uint8Array =>
    grantIdOf(
      p.domain,
      { executor: p.executor, capsuleId: p.capsuleId, ephemeralKey: p.ephemeralKey, runIndex },
      p.measurement,
    )
  for (;;) {
    p.signal?.throwIfAborted()
    if ((await reader.getGrant(p.grantId)) !== undefined) return p.grantId
    const runs = await reader.runCount(p.capsuleId)
    const lowest = runs > BigInt(MAX_INDEXES) ? runs - BigInt(MAX_INDEXES) : 0n
    // The keyguard's index, found by recomputing its answer (it is the run count itself while
    // nothing was recorded since it read it): the record is above it. Not found (more than 64
    // grants since): every index of the window is asked.
    let from = lowest
    for (let i = runs; i >= lowest; i--) {
      if (equalBytes(at(i), p.grantId)) {
        from = i + 1n
        break
      }
    }
    for (let i = from; i < runs; i++) {
      const id = at(i)
      if ((await reader.getGrant(id)) !== undefined) return id
    }
    if (Date.now() + pollMs > deadline) return undefined
    await new Promise((r) => setTimeout(r, pollMs))
  }
}
