/**
 * docs/adr/0084: an audit held back by the operator's failure that expires before the fix is not
 * the executor's doing. On anvil + libp2p: audits from `other`, never approved, revert
 * `NotKeyguard` (halted). The executor's request expired 70 s ahead; the keyguard stops, the
 * owner approves `other`, and the chain's clock passes the expiry. At restart the held audit
 * reverts `SignedRequestExpired`: an `expired-while-halted` alert, its file removed, nobody cut
 * off, and the fast path serves again (the restart after the fix). Classified by the revert alone,
 * an expiry would have cut this honest executor off for 24 h.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard, type KeyguardEvent } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { type Chain, chainClientFor, quietLogger, send, until } from './helpers/world.ts'

let w: KeyguardWorld
let chain: Chain | undefined

beforeAll(async () => {
  w = await keyguardWorld({
    capsules: 2,
    keyguard: { pollIntervalMs: 200, fastPath: { enabled: true } },
    events: ['audit-alert', 'fast-path-halted'],
    chainClient: () => chainClientFor(chain as Chain, (chain as Chain).other),
    prepare: async (world) => {
      chain = world.chain
    },
  })
}, 90_000)

afterAll(() => w?.stop())

const answer = (res: Awaited<ReturnType<KeyguardWorld['ask']>>) =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason ?? ''}` : res.status

describe('fast path: a held audit that expires (docs/adr/0084)', () => {
  it('cuts nobody off and serves again after the fix and a restart', async () => {
    const req = (capsuleId: string, expiresIn: number) =>
      w.signed({ capsuleId, expiresIn, fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } })
    expect(answer(await w.ask(req(w.capsules[0] as string, 70)))).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'fast-path-halted'), 15_000)
    await w.keyguard.stop()
    await send(
      w.chain.c.capsuleRegistry.connect(w.chain.owner).setOperator(w.chain.other.address, true),
    )
    await w.chain.anvil.provider.send('evm_increaseTime', [90])
    await w.chain.anvil.provider.send('evm_mine', [])

    const events: KeyguardEvent[] = []
    const kg = createKeyguard({
      dataDir: w.parts.dir,
      confirmations: 0,
      startBlock: w.chain.addresses.deployBlock,
      pollIntervalMs: 200,
      fastPath: { enabled: true },
    })({
      sealer: w.parts.sealer,
      keyStore: w.parts.keyStore,
      journal: w.parts.journal,
      chain: chainClientFor(w.chain, w.chain.other),
      libp2p: w.kgNode,
      logger: quietLogger,
    })
    for (const type of ['audit-alert', 'fast-path-halted', 'fast-path-granted']) {
      kg.events.addEventListener(type, (e) => events.push((e as CustomEvent<KeyguardEvent>).detail))
    }
    w.defer('restarted keyguard', () => kg.stop())
    await kg.start()
    await until(
      () => events.some((e) => e.type === 'fast-path-halted' && e.halt === undefined),
      15_000,
    )
    expect(events.find((e) => e.type === 'audit-alert')).toMatchObject({
      error: 'SignedRequestExpired',
      reason: 'expired-while-halted',
      blame: 'operator',
    })
    const dir = join(w.parts.dir, 'fast-path-audit')
    expect((await readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.'))).toEqual(
      [],
    )
    expect(answer(await w.ask(req(w.capsules[1] as string, 300)))).toBe('granted')
    await kg.stop()
  }, 90_000)
})
