/**
 * A reverted fast-path audit is a security event (ADR 0072): the key went out and the run will
 * never be counted nor paid. The keyguard then refuses that executor the fast path
 * (`policy-denied` `audit-failed`) for `auditFailureCooldownMs`; other executors are served.
 * Here every audit reverts `NotKeyguard` (the keyguard sends them from an account the owner never
 * approved), on anvil + libp2p. On the previous code the executor kept getting keys inline.
 */
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { type Chain, chainClientFor, registerExecutor, until } from './helpers/world.ts'

let w: KeyguardWorld
let chain: Chain | undefined

beforeAll(async () => {
  w = await keyguardWorld({
    executors: 2,
    capsules: 2,
    keyguard: { pollIntervalMs: 200, fastPath: { enabled: true } },
    events: ['fast-path-granted', 'audit-recorded', 'audit-alert'],
    // Audits signed by `other`, which the owner never made its operator: they revert.
    chainClient: () => chainClientFor(chain as Chain, (chain as Chain).other),
    prepare: async (world) => {
      chain = world.chain
      await registerExecutor(world.chain, world.chain.other, world.executors[1]?.node as never)
    },
  })
}, 90_000)

afterAll(() => w?.stop())

const answer = (res: Awaited<ReturnType<KeyguardWorld['ask']>>) =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason ?? ''}` : res.status

describe('fast path: an executor whose audit reverted is cut off', () => {
  it('serves once, the audit reverts, then refuses that executor audit-failed; another is served', async () => {
    const req = () => w.signed({ fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } })
    expect(answer(await w.ask(req()))).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'audit-alert'), 15_000)
    expect(w.events.find((e) => e.type === 'audit-alert')).toMatchObject({
      reason: 'operator-not-approved',
    })
    expect(answer(await w.ask(req()))).toBe('policy-denied:audit-failed')
    // Another capsule, same executor: still cut.
    expect(answer(await w.ask(w.signed({ capsuleId: w.capsules[1] as string })))).toBe(
      'policy-denied:audit-failed',
    )
    // Another executor is not.
    const second = w.executors[1]
    if (second === undefined) throw new Error('no second executor')
    const theirs = w.signed({
      capsuleId: w.capsules[1] as string,
      side: second,
      signer: w.chain.other,
    })
    expect(answer(await w.ask(theirs, second.node))).toBe('granted')
  }, 60_000)
})
