/**
 * A fast-path request must leave its audit time to land (ADR 0072), on anvil mining a block every
 * 2 s as a real chain does: `recordFastPathGrant` reverts `SignedRequestExpired` once its block
 * is past the request's expiry, so a key released for a request expiring 1 s ahead went out
 * with no audit, no run counted and no fee — under `maxRuns(1)`, again and again. The keyguard
 * now refuses (`expired` `too-soon`) a request expiring less than `minAuditMarginSeconds` (60)
 * after the later of its clock and the chain's. On the previous code a request 1 s (or 10 s) ahead was
 * granted and its audit reverted.
 */
import { all, environment, maxRuns } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { registerCapsule, storeKey, until } from './helpers/world.ts'

let w: KeyguardWorld
let capsule = ''

beforeAll(async () => {
  w = await keyguardWorld({
    keyguard: { pollIntervalMs: 200, fastPath: { enabled: true, maxExpirySeconds: 300 } },
    events: ['fast-path-granted', 'audit-recorded', 'audit-alert'],
    prepare: async (world) => {
      const p = await deployPolicy(
        world.chain.owner,
        all(environment(world.chain.measurement), maxRuns(1)),
        { nodeRegistry: world.chain.addresses.nodeRegistry },
      )
      capsule = await registerCapsule(world.chain, world.kgNode, p.address)
      await storeKey(world.parts, capsule, world.dataKeys.get(world.capsuleId) as Uint8Array)
    },
  })
  await w.chain.anvil.provider.send('evm_setAutomine', [false])
  await w.chain.anvil.provider.send('evm_setIntervalMining', [2])
}, 90_000)

afterAll(() => w?.stop())

const answer = (res: Awaited<ReturnType<KeyguardWorld['ask']>>) =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason ?? ''}` : res.status

describe('fast path: the expiry leaves the audit a margin', () => {
  // 10 s, not 1 s: on a loaded box a request 1 s ahead can be past its expiry before it is read
  // (refused `expired` with no reason, a different check). Any expiry under the margin was served
  // by the previous code.
  it('refuses a request expiring within the margin (10 s, 30 s): nothing served, no audit', async () => {
    for (const expiresIn of [10, 30]) {
      expect(answer(await w.ask(w.signed({ capsuleId: capsule, expiresIn })))).toBe(
        'expired:too-soon',
      )
    }
    expect(w.events.filter((e) => e.type === 'fast-path-granted')).toEqual([])
  }, 60_000)

  it('counts from the chain clock when it is ahead of the keyguard', async () => {
    const p = w.chain.anvil.provider
    const latest = await p.getBlock('latest')
    // The chain 100 s ahead: a request 120 s ahead of the keyguard's clock is 20 s ahead of it.
    await p.send('evm_setNextBlockTimestamp', [Math.floor(Date.now() / 1000) + 100])
    await p.send('evm_mine', [])
    expect(((await p.getBlock('latest'))?.timestamp ?? 0) > (latest?.timestamp ?? 0)).toBe(true)
    await new Promise((r) => setTimeout(r, 1100)) // the keyguard reads the chain clock once a second
    expect(answer(await w.ask(w.signed({ capsuleId: capsule, expiresIn: 120 })))).toBe(
      'expired:too-soon',
    )
    // Enough margin past the chain's clock: served once, and its audit lands (maxRuns(1)).
    expect(answer(await w.ask(w.signed({ capsuleId: capsule, expiresIn: 200 })))).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'audit-recorded'), 15_000)
    expect(w.events.filter((e) => e.type === 'audit-alert')).toEqual([])
    expect(await w.chain.c.accessController.runCount(capsule)).toBe(1n)
  }, 60_000)
})
