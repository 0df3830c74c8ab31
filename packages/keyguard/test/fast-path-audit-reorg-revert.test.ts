/**
 * ADR 0081 amendment: an audit re-sent after a reorg that reverts is handled like a first revert
 * (ADR 0072, docs/adr/0084), on a real anvil (`anvil_reorg`). The keyguard records audits as an
 * operator account the owner approved. Under `maxRuns(1)` the executor takes the key on the fast
 * path and the audit is mined; a one-block reorg replaces that block with one holding the
 * executor's chain-path `requestAccess`; then the owner withdraws the operator's approval. The
 * keyguard finds the audit gone and sends it again: it reverts `NotKeyguard`, the operator's side
 * (docs/adr/0084): the fast path must halt for everyone (`busy` `audits-halted`), the audit's file
 * be marked as the operator's failure (not `revertedAt` against the executor), and the chain grant
 * still not served. The code before the ADR 0081 amendment only raised an `audit-alert` for a
 * re-send that reverted: keys kept going out inline.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { maxRunsOneCapsule, reorgAuditForChainRequest } from './helpers/reorg.ts'
import { type Chain, chainClientFor, send, until } from './helpers/world.ts'

let w: KeyguardWorld
let chain: Chain | undefined
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
      'audit-reorged',
      'released',
      'grant-held',
    ],
    // Audits signed by `other`, the owner's approved operator (until the test withdraws it).
    chainClient: () => chainClientFor(chain as Chain, (chain as Chain).other),
    prepare: async (world) => {
      chain = world.chain
      const registry = world.chain.c.capsuleRegistry.connect(world.chain.owner)
      await send(registry.setOperator(world.chain.other.address, true))
      capsule = await maxRunsOneCapsule(world)
    },
  })
}, 90_000)

afterAll(() => w?.stop())

const provider = () => w.chain.anvil.provider

const answer = (res: Awaited<ReturnType<KeyguardWorld['ask']>>) =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason ?? ''}` : res.status

describe('a fast-path audit re-sent after a reorg that reverts (ADR 0081 amendment)', () => {
  it('halts the fast path and marks the audit as the operator failure, as a first revert does', async () => {
    const res = await w.ask(
      w.signed({ capsuleId: capsule, fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } }),
    )
    expect(res.status).toBe('granted')
    if (res.status !== 'granted') return
    const fastGrantId = (
      w.events.find((e) => e.type === 'fast-path-granted') as { grantId: string }
    ).grantId
    await until(() => w.events.some((e) => e.type === 'audit-recorded'))
    const ac = w.chain.c.accessController
    expect(await ac.runCount(capsule)).toBe(1n)

    // The reorg: the audit's block is replaced by one holding the executor's chain request.
    await reorgAuditForChainRequest(w, capsule)
    // The owner withdraws the operator: the re-sent audit reverts. Its block also buries the
    // chain grant `confirmations` deep, so the keyguard looks for the audit now.
    await send(
      w.chain.c.capsuleRegistry.connect(w.chain.owner).setOperator(w.chain.other.address, false),
    )
    await until(() => w.events.some((e) => e.type === 'audit-reorged'), 20_000)
    await until(
      () => w.events.some((e) => e.type === 'audit-alert' && e.grantId === fastGrantId),
      20_000,
    )
    expect(w.events.find((e) => e.type === 'audit-alert')).toMatchObject({
      grantId: fastGrantId,
      reason: 'operator-not-approved',
    })
    // Halted: another capsule's request is refused before anything else.
    const again = w.signed({ fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } })
    expect(answer(await w.ask(again))).toBe('busy:audits-halted')
    // Marked on disk as the operator's failure (a restart starts halted), nothing against the executor.
    const dir = join(w.parts.dir, 'fast-path-audit')
    const files = (await readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.'))
    const kept = await Promise.all(
      files.map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8'))),
    )
    expect(kept.filter((e) => typeof e.revertedAt === 'string')).toHaveLength(0)
    expect(kept.filter((e) => e.operatorError === 'NotKeyguard')).toHaveLength(1)
    // The key is out and no run counts it: the chain grant is still held, not served.
    await provider().send('evm_mine', [])
    await new Promise((r) => setTimeout(r, 500))
    expect(w.events.some((e) => e.type === 'released')).toBe(false)
    expect(w.events.some((e) => e.type === 'grant-held')).toBe(true)
    expect(await ac.runCount(capsule)).toBe(1n)
  }, 60_000)
})
