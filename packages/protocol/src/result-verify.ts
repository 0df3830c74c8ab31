/**
 * The receiver's acceptance rules for a result delivery (SPEC.md §3.4.3), as one pure
 * function over the decoded delivery, the grant as the chain stores it, and the receiver's
 * own state. The network, chain and HPKE parts are the caller's; the order of the checks and
 * the reason each failure gets are fixed here, so every receiver refuses alike.
 */
import { type Address, checksumAddress, equalBytes, grantId } from '@digicap/capsule-core'
import { WireSignatureError } from './errors.ts'
import type { ResultDelivery, ResultRefusalCode } from './result.ts'
import { type ResultDomain, recoverResultSigner } from './result-signature.ts'

/** A grant as `AccessController.getGrant` returns it (the fields a receiver needs). */
export interface GrantRecord {
  /** The executor the grant names, 20 bytes. */
  executor: Uint8Array
  capsuleId: Uint8Array
  /** The run's ephemeral X25519 key (bound into the grant id). */
  ephemeralKey: Uint8Array
  /** The capsule's run counter when the grant was made (bound into the grant id). */
  runIndex: bigint
}

/** What the receiver knows when it checks a delivery. */
export interface ResultCheckContext {
  /** The chain and AccessController the receiver trusts. */
  domain: ResultDomain
  /** This receiver's X25519 public key. */
  receiverKey: Uint8Array
  /** Largest sealed result this receiver takes, bytes. */
  maxResultSize: number
  /** True when this `runId` or `grantId` was accepted before. */
  seen: boolean
  /** The grant `delivery.grantId` on chain, or undefined when the chain has none. */
  grant: GrantRecord | undefined
  /**
   * The receiver keys the capsule's owner-signed header lists (undefined entries: the
   * registry does not know the capsule). Absent: check 11 is the caller's.
   */
  receivers?: readonly Uint8Array[] | undefined
}

/** The outcome of {@link checkResultDelivery}. */
export type ResultVerdict =
  | { ok: true; executor: Address }
  | { ok: false; reasonCode: ResultRefusalCode; executor?: Address | undefined }

/**
 * The AccessController's grant id: `keccak256(abi.encode(uint256 chainId, address
 * accessController, bytes32 capsuleId, address executor, bytes32 ephemeralKey, bytes32
 * measurement, uint256 runIndex))` — seven 32-byte words.
 */
export function grantIdOf(
  domain: ResultDomain,
  grant: GrantRecord,
  measurement: Uint8Array,
): Uint8Array {
  return grantId({
    chainId: domain.chainId,
    accessController: domain.verifyingContract,
    capsuleId: grant.capsuleId,
    executor: grant.executor,
    ephemeralKey: grant.ephemeralKey,
    measurement,
    runIndex: grant.runIndex,
  })
}

/** What a receiver knows before it looks the grant up. */
export type ResultEnvelopeContext = Omit<ResultCheckContext, 'grant'>

/**
 * The checks before the chain lookup, in order: signature (`bad-signature`: malformed, or the
 * signer is not `executor`), `wrong-receiver`, `too-large`, `replayed`.
 */
export function checkResultEnvelope(
  delivery: ResultDelivery,
  context: ResultEnvelopeContext,
): ResultVerdict {
  let signer: Address
  try {
    signer = recoverResultSigner(delivery, context.domain)
  } catch (err) {
    if (err instanceof WireSignatureError) return { ok: false, reasonCode: 'bad-signature' }
    throw err
  }
  if (signer !== checksumAddress(delivery.executor)) {
    return { ok: false, reasonCode: 'bad-signature' }
  }
  const refuse = (reasonCode: ResultRefusalCode): ResultVerdict => ({
    ok: false,
    reasonCode,
    executor: signer,
  })
  if (!equalBytes(delivery.receiverKey, context.receiverKey)) return refuse('wrong-receiver')
  if (delivery.resultSize > context.maxResultSize) return refuse('too-large')
  if (context.seen) return refuse('replayed')
  return { ok: true, executor: signer }
}

/**
 * The checks against the grant on chain, in order: `unknown-grant`, `wrong-executor`,
 * `wrong-capsule`, `wrong-measurement` (the grant id does not recompute from the grant's
 * fields and the delivery's `measurement`).
 */
export function checkResultGrant(
  delivery: ResultDelivery,
  grant: GrantRecord | undefined,
  domain: ResultDomain,
): ResultVerdict {
  const executor = checksumAddress(delivery.executor)
  const refuse = (reasonCode: ResultRefusalCode): ResultVerdict => ({
    ok: false,
    reasonCode,
    executor,
  })
  if (grant === undefined) return refuse('unknown-grant')
  if (!equalBytes(grant.executor, delivery.executor)) return refuse('wrong-executor')
  if (!equalBytes(grant.capsuleId, delivery.capsuleId)) return refuse('wrong-capsule')
  if (!equalBytes(grantIdOf(domain, grant, delivery.measurement), delivery.grantId)) {
    return refuse('wrong-measurement')
  }
  return { ok: true, executor }
}

/**
 * Check 11: the capsule's owner-signed header lists `delivery.receiverKey` among its receivers
 * (`not-a-receiver` otherwise, and for a capsule the registry does not know: `receivers`
 * undefined). A grant for some capsule is not a licence to deliver to anyone.
 */
export function checkResultReceivers(
  delivery: ResultDelivery,
  receivers: readonly Uint8Array[] | undefined,
): ResultVerdict {
  const executor = checksumAddress(delivery.executor)
  if (receivers?.some((k) => equalBytes(k, delivery.receiverKey)) === true) {
    return { ok: true, executor }
  }
  return { ok: false, reasonCode: 'not-a-receiver', executor }
}

/**
 * Applies every acceptance rule before the fetch, in order: {@link checkResultEnvelope},
 * then {@link checkResultGrant}, then (when `context.receivers` is given)
 * {@link checkResultReceivers}. A pass means: fetch (by CID: at most `resultSize` bytes,
 * `fetch-failed` if they do not come, `hash-mismatch` if they do not hash to `resultHash`)
 * and open (`open-failed`).
 *
 * @example
 * ```ts
 * const v = checkResultDelivery(delivery, { domain, receiverKey, maxResultSize, seen, grant })
 * if (!v.ok) return { runId: delivery.runId, status: 'refused', reasonCode: v.reasonCode }
 * ```
 */
export function checkResultDelivery(
  delivery: ResultDelivery,
  context: ResultCheckContext,
): ResultVerdict {
  const first = checkResultEnvelope(delivery, context)
  if (!first.ok) return first
  const second = checkResultGrant(delivery, context.grant, context.domain)
  if (!second.ok || !('receivers' in context)) return second
  return checkResultReceivers(delivery, context.receivers)
}
