/**
 * docs/adr/0084: a restart keeps the fast path halted until an audit it SENDS lands, and the held
 * audits are re-sent while halted, so the fix lifts the halt without a restart. On anvil +
 * libp2p, audits from `other` (approved at first), `confirmations: 5` so landed audits stay
 * tracked (and on disk). Audit A lands; the owner revokes `other`; audit B reverts `NotKeyguard`:
 * halted. The keyguard restarts, `other` still revoked: A is found on chain at start, which
 * proves nothing, so it must stay halted (a first version lifted the halt on A and served a key
 * whose audit reverted again). The owner approves `other` again: the held B is re-sent within
 * `haltRetryMs`, lands, and the executor is served.
 */
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard, type Keyguard, type KeyguardEvent } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { type Chain, chainClientFor, quietLogger, send, until } from './helpers/world.ts'

let w: KeyguardWorld
let chain: Chain | undefined

const operatorApproved = (yes: boolean) =>
  send(w.chain.c.capsuleRegistry.connect(w.chain.owner).setOperator(w.chain.other.address, yes))

beforeAll(async () => {
  w = await keyguardWorld({
    capsules: 3,
    keyguard: { confirmations: 5, pollIntervalMs: 200, fastPath: { enabled: true } },
    events: ['audit-recorded', 'audit-alert', 'fast-path-halted'],
    chainClient: () => chainClientFor(chain as Chain, (chain as Chain).other),
    prepare: async (world) => {
      chain = world.chain
      await send(
        world.chain.c.capsuleRegistry
          .connect(world.chain.owner)
          .setOperator(world.chain.other.address, true),
      )
    },
  })
}, 90_000)

afterAll(() => w?.stop())

const answer = (res: Awaited<ReturnType<KeyguardWorld['ask']>>) =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason ?? ''}` : res.status

function restarted(events: KeyguardEvent[]): Keyguard {
  const kg = createKeyguard({
    dataDir: w.parts.dir,
    confirmations: 5,
    startBlock: w.chain.addresses.deployBlock,
    pollIntervalMs: 200,
    fastPath: { enabled: true, haltRetryMs: 300 },
  })({
    sealer: w.parts.sealer,
    keyStore: w.parts.keyStore,
    journal: w.parts.journal,
    chain: chainClientFor(w.chain, w.chain.other),
    libp2p: w.kgNode,
    logger: quietLogger,
  })
  for (const type of ['audit-recorded', 'audit-alert', 'fast-path-halted']) {
    kg.events.addEventListener(type, (e) => events.push((e as CustomEvent<KeyguardEvent>).detail))
  }
  w.defer('restarted keyguard', () => kg.stop())
  return kg
}

describe('fast path: a halt across a restart (docs/adr/0084)', () => {
  it('stays halted when only an old audit is found on chain, and lifts when a held one is re-sent and lands', async () => {
    const req = (capsuleId: string) =>
      w.signed({ capsuleId, fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } })
    expect(answer(await w.ask(req(w.capsules[0] as string)))).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'audit-recorded'), 15_000)
    await operatorApproved(false)
    expect(answer(await w.ask(req(w.capsules[1] as string)))).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'fast-path-halted'), 15_000)
    await w.keyguard.stop()

    const events: KeyguardEvent[] = []
    const kg = restarted(events)
    await kg.start()
    // A (landed before) is found on chain; B reverts again: still halted.
    await until(() => events.some((e) => e.type === 'audit-alert'), 15_000)
    expect(events.find((e) => e.type === 'audit-alert')).toMatchObject({ error: 'NotKeyguard' })
    expect(answer(await w.ask(req(w.capsules[2] as string)))).toBe('busy:audits-halted')
    expect((await kg.status()).fastPath.halted).toMatchObject({ error: 'NotKeyguard' })

    // Fixed on chain, no restart: the held audit is re-sent, lands, and the halt lifts.
    await operatorApproved(true)
    await until(
      () => events.some((e) => e.type === 'fast-path-halted' && e.halt === undefined),
      20_000,
    )
    expect(answer(await w.ask(req(w.capsules[2] as string)))).toBe('granted')
    await kg.stop()
  }, 90_000)
})
