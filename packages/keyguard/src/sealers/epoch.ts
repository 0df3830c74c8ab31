/**
 * The NV epoch counter of a rollback-protected key (ADR 0094), as the owner's commands use it:
 * `advanceEpoch` (each approval: the counter defined if missing or not this node's, then
 * incremented under the owner's signature and read back in a session salted to the pinned
 * key) and `readEpochState` (what `key-policy show` reports).
 */
import { randomBytes } from 'node:crypto'
import { InvalidArgumentError } from '@digicap/capsule-core'
import {
  nvDefineSpace,
  nvIncrementSigned,
  nvName,
  nvReadCounterInSession,
  nvReadPublic,
  nvUndefineSpace,
  TpmCommandError,
  TpmPolicyError,
  type TpmTransport,
  transportFor,
  withChannel,
} from '@digicap/tpm'
import { pinnedSaltKey } from './pcr-authorize.ts'
import { epochIndexPublic, type PolicyAuthKey, signDigest } from './pcr-policy.ts'
import type { Tpm2KeyRecord } from './tpm2-key-record.ts'

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

function transportOf(tcti: string, timeoutMs: number): TpmTransport {
  const transport = transportFor(tcti, timeoutMs)
  if (transport === undefined) {
    throw new InvalidArgumentError('The epoch counter needs a swtpm: or device: TCTI', {
      details: { tcti },
    })
  }
  return transport
}

/**
 * Runs an owner-hierarchy NV command (define, undefine), which this node authorizes with the
 * owner's EMPTY password: an owner who set one gets a typed error saying so.
 */
async function asOwner<T>(index: number, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    if (
      err instanceof TpmCommandError &&
      (err.details.base === '0x08e' || err.details.base === '0x0a2')
    ) {
      throw new TpmPolicyError('The TPM refused the owner authorization for the epoch counter', {
        details: {
          reason: 'owner-auth',
          index: `0x${index.toString(16).padStart(8, '0')}`,
          ...err.details,
        },
        hint: 'The owner hierarchy has a password: this node defines its epoch counter with the empty owner authorization. Clear it (tpm2_changeauth -c o -p <password>) for this approval, or define the index by hand with the same public area.',
        cause: err,
      })
    }
    throw err
  }
}

/** The counter after an approval bumped it: what the new approval is bound to. */
export interface AdvancedEpoch {
  index: number
  /** The counter's name (written). */
  name: Uint8Array
  value: bigint
  writeRef: Uint8Array
  /** The counter was (re)defined: missing, or not the one the record names. */
  defined: 'kept' | 'missing' | 'replaced'
}

/**
 * Moves the key's epoch counter on, so every approval signed before stops satisfying the TPM.
 * A counter missing at the index is defined; one whose name is not the record's (an
 * attacker's, or a record that lost its `writeRef`) is undefined and defined afresh with a new
 * `writeRef` (its name, and any approval naming it, then differ from everything before). The
 * TPM's counters never go back, even across an undefine, so no epoch value returns.
 *
 * @throws {TpmPolicyError} `no-pinned-key`, `owner-auth` (the owner hierarchy has a password);
 *   the TPM's errors.
 */
export async function advanceEpoch(
  tcti: string,
  record: Tpm2KeyRecord,
  key: PolicyAuthKey,
  timeoutMs = 10_000,
): Promise<AdvancedEpoch> {
  const epochIndex = record.policy?.epochIndex
  if (record.policy === undefined || epochIndex === undefined) {
    throw new InvalidArgumentError('The key has no epoch counter', {
      details: { handle: record.handle },
    })
  }
  const saltKey = pinnedSaltKey(record)
  const index = epochIndex.handle
  const authKey = record.policy.authKey
  return withChannel(transportOf(tcti, timeoutMs), async (send) => {
    let writeRef = epochIndex.writeRef
    const found = await nvReadPublic(send, index)
    const ours =
      found !== undefined &&
      writeRef !== undefined &&
      (same(found.name, nvName(epochIndexPublic(index, authKey, writeRef, false))) ||
        same(found.name, nvName(epochIndexPublic(index, authKey, writeRef, true))))
    let defined: AdvancedEpoch['defined'] = 'kept'
    let current = found?.name
    if (!ours || writeRef === undefined || current === undefined) {
      if (found !== undefined) await asOwner(index, () => nvUndefineSpace(send, index))
      defined = found === undefined ? 'missing' : 'replaced'
      writeRef = new Uint8Array(randomBytes(32))
      const pub = epochIndexPublic(index, authKey, writeRef, false)
      await asOwner(index, () => nvDefineSpace(send, pub))
      current = nvName(pub)
    }
    const ref = writeRef
    await nvIncrementSigned(
      send,
      saltKey,
      index,
      current,
      key.publicKey,
      (d) => signDigest(key, d),
      ref,
    )
    const name = nvName(epochIndexPublic(index, authKey, ref, true))
    const value = await nvReadCounterInSession(send, saltKey, index, name)
    return { index, name, value, writeRef: ref, defined }
  })
}

/** The epoch counter as `key-policy show` reports it. */
export interface EpochState {
  index: string
  /**
   * `ok`: this node's counter, its value read in a salted session; `missing`: no index there;
   * `not-ours`: another index (redefined by someone, or the record lost its `writeRef`);
   * `unwritten`: defined, never incremented.
   */
  state: 'ok' | 'missing' | 'not-ours' | 'unwritten'
  value?: string
}

export async function readEpochState(
  tcti: string,
  record: Tpm2KeyRecord,
  timeoutMs = 10_000,
): Promise<EpochState | undefined> {
  const epochIndex = record.policy?.epochIndex
  if (record.policy === undefined || epochIndex === undefined) return undefined
  const saltKey = pinnedSaltKey(record)
  const index = epochIndex.handle
  const text = `0x${index.toString(16).padStart(8, '0')}`
  const authKey = record.policy.authKey
  return withChannel(transportOf(tcti, timeoutMs), async (send) => {
    const found = await nvReadPublic(send, index)
    if (found === undefined) return { index: text, state: 'missing' }
    const ref = epochIndex.writeRef
    if (ref !== undefined && same(found.name, nvName(epochIndexPublic(index, authKey, ref, false))))
      return { index: text, state: 'unwritten' }
    if (ref === undefined || !same(found.name, nvName(epochIndexPublic(index, authKey, ref, true))))
      return { index: text, state: 'not-ours' }
    const value = await nvReadCounterInSession(send, saltKey, index, found.name)
    return { index: text, state: 'ok', value: String(value) }
  })
}
