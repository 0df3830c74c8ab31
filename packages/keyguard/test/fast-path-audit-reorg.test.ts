/**
 * ADR 0081: a fast-path audit counts for the chain path only once it is `confirmations` deep.
 *
 * The attack (real anvil, `anvil_reorg`): under `maxRuns(1)` the executor takes the key on the
 * fast path; the keyguard's audit is mined. A one-block reorg replaces that block with one holding
 * the executor's own chain-path `requestAccess` (anvil drops the audit, as a block producer that
 * leaves it out does). The chain grant takes run 0 and is buried `confirmations` deep. Before ADR
 * 0081 the keyguard had settled the audit at its receipt, so it served the chain grant: two keys
 * under `maxRuns(1)`. Now the audit stays unconfirmed; the chain grant is held, the audit sent
 * again is recorded as an overrun, and the chain grant is refused: one key.
 */
import { decodeHpkeSealed, hpkeOpen } from '@digicap/capsule-core'
import { getBytes, hexlify } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { headBlockGrantId, maxRunsOneCapsule, reorgAuditForChainRequest } from './helpers/reorg.ts'
import { until } from './helpers/world.ts'

let w: KeyguardWorld
let capsule: string

beforeAll(async () => {
  w = await keyguardWorld({
    keyguardDialsExecutor: true,
    keyguard: {
      confirmations: 1,
      pollIntervalMs: 100,
      fastPath: { enabled: true, maxExpirySeconds: 300 },
    },
    events: [
      'fast-path-granted',
      'audit-recorded',
      'audit-alert',
      'released',
      'grant-refused',
      'grant-held',
      'grant-accepted',
      'audit-reorged',
    ],
    prepare: async (world) => {
      capsule = await maxRunsOneCapsule(world)
    },
  })
}, 90_000)

afterAll(() => w?.stop())

const provider = () => w.chain.anvil.provider

const eventsFor = (grantId: string) =>
  w.events.filter((e) => 'grantId' in e && (e as { grantId: string }).grantId === grantId)

describe('a fast-path audit reorged away (ADR 0081)', () => {
  it('the chain grant that took its run in the new block is not served: one key under maxRuns(1)', async () => {
    // The fast path: a key inline, its audit mined (automine).
    const eph = w.exec.newEphemeral()
    const res = await w.ask(
      w.signed({ capsuleId: capsule, fields: { ephemeralKey: getBytes(eph) } }),
    )
    expect(res.status).toBe('granted')
    if (res.status !== 'granted' || res.keyRelease === undefined) return
    const fastKey = await hpkeOpen(
      w.exec.keys.get(eph) as Uint8Array,
      decodeHpkeSealed(res.keyRelease.hpke),
      res.keyRelease.grantId,
    )
    expect(hexlify(fastKey)).toBe(hexlify(w.dataKeys.get(w.capsuleId) as Uint8Array))
    await until(() => w.events.some((e) => e.type === 'audit-recorded'))
    const ac = w.chain.c.accessController
    expect(await ac.runCount(capsule)).toBe(1n)

    // The reorg: the audit's block is replaced by one holding the executor's chain request.
    await reorgAuditForChainRequest(w, capsule)
    const chainGrantId = await headBlockGrantId(w)
    expect((await ac.getGrant(chainGrantId)).runIndex).toBe(0n)
    // Bury the chain grant `confirmations` deep: the keyguard sees it now.
    await provider().send('evm_mine', [])

    // The keyguard finds its audit gone and sends it again; bury that one too.
    await until(
      () =>
        w.events.some((e) => e.type === 'audit-reorged') ||
        eventsFor(chainGrantId).some((e) => e.type === 'released'),
      20_000,
    )
    await until(
      async () => (await ac.runCount(capsule)) === 2n || w.exec.received.has(chainGrantId),
    )
    await provider().send('evm_mine', [])
    await until(
      () =>
        eventsFor(chainGrantId).some((e) => e.type === 'grant-refused' || e.type === 'released'),
      20_000,
    )
    expect(eventsFor(chainGrantId).some((e) => e.type === 'released')).toBe(false)
    expect(w.exec.received.has(chainGrantId)).toBe(false)
    expect(eventsFor(chainGrantId).find((e) => e.type === 'grant-refused')).toEqual({
      type: 'grant-refused',
      grantId: chainGrantId,
      reason: 'fast-path-overrun',
    })
    // The audit was sent again and landed behind the chain grant, as an overrun: both runs count.
    expect(await ac.runCount(capsule)).toBe(2n)
    expect(await ac.overrunRunCount(capsule)).toBe(2n)
  }, 60_000)
})
