/**
 * ADR 0081 amendment: an audit that landed is tracked across a keyguard restart until it is
 * confirmed (real anvil, `anvil_reorg`). Under `maxRuns(1)` the executor takes the key on the
 * fast path and the audit is mined; a one-block reorg replaces that block with one holding the
 * executor's own chain-path `requestAccess`, and the keyguard restarts before it noticed. The
 * restarted keyguard finds the audit's kept file, sees that the audit is not on chain, sends it
 * again (it lands as an overrun) and refuses the chain grant: one key. The previous code removed
 * the audit's file at its first receipt, so the restarted keyguard knew nothing of it and served
 * the chain grant a second key.
 */
import { decodeHpkeSealed, hpkeOpen } from '@digicap/capsule-core'
import { getBytes, hexlify } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard, type KeyguardEvent } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { headBlockGrantId, maxRunsOneCapsule, reorgAuditForChainRequest } from './helpers/reorg.ts'
import { chainClientFor, quietLogger, until } from './helpers/world.ts'

let w: KeyguardWorld
let capsule: string

const keyguardInit = () => ({
  confirmations: 1,
  pollIntervalMs: 100,
  fastPath: { enabled: true, maxExpirySeconds: 300 },
})

beforeAll(async () => {
  w = await keyguardWorld({
    keyguardDialsExecutor: true,
    keyguard: keyguardInit(),
    events: ['fast-path-granted', 'audit-recorded', 'audit-alert'],
    prepare: async (world) => {
      capsule = await maxRunsOneCapsule(world)
    },
  })
}, 90_000)

afterAll(() => w?.stop())

const provider = () => w.chain.anvil.provider

describe('a fast-path audit reorged away across a keyguard restart (ADR 0081 amendment)', () => {
  it('the restarted keyguard re-sends it and refuses the chain grant that took its run', async () => {
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
    // The keyguard stops before the chain grant is `confirmations` deep (it never looked).
    await w.keyguard.stop()
    const chainGrantId = await headBlockGrantId(w)
    expect((await ac.getGrant(chainGrantId)).runIndex).toBe(0n)
    expect(await ac.runCount(capsule)).toBe(1n)

    // A new keyguard on the same data dir and node.
    const events: KeyguardEvent[] = []
    const kg = createKeyguard({
      dataDir: w.parts.dir,
      startBlock: w.chain.addresses.deployBlock,
      ...keyguardInit(),
    })({
      sealer: w.parts.sealer,
      keyStore: w.parts.keyStore,
      journal: w.parts.journal,
      chain: chainClientFor(w.chain),
      libp2p: w.kgNode,
      logger: quietLogger,
    })
    for (const type of ['audit-recorded', 'audit-alert', 'released', 'grant-refused']) {
      kg.events.addEventListener(type, (e) => events.push((e as CustomEvent<KeyguardEvent>).detail))
    }
    w.defer('restarted keyguard', () => kg.stop())
    await kg.start()
    // Bury the chain grant `confirmations` deep: the keyguard sees it now.
    await provider().send('evm_mine', [])
    const forG = () =>
      events.filter((e) => 'grantId' in e && (e as { grantId: string }).grantId === chainGrantId)
    await until(
      async () => (await ac.runCount(capsule)) === 2n || forG().some((e) => e.type === 'released'),
      20_000,
    )
    await provider().send('evm_mine', [])
    await until(
      () => forG().some((e) => e.type === 'grant-refused' || e.type === 'released'),
      20_000,
    )
    expect(forG().some((e) => e.type === 'released')).toBe(false)
    expect(w.exec.received.has(chainGrantId)).toBe(false)
    expect(forG().find((e) => e.type === 'grant-refused')).toEqual({
      type: 'grant-refused',
      grantId: chainGrantId,
      reason: 'fast-path-overrun',
    })
    // The audit landed again, behind the chain grant, as an overrun.
    expect(events.some((e) => e.type === 'audit-recorded')).toBe(true)
    expect(await ac.runCount(capsule)).toBe(2n)
    expect(await ac.overrunRunCount(capsule)).toBe(2n)
    await kg.stop()
  }, 60_000)
})
