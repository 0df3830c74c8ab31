/**
 * The fast path's `audit-failed` cut-off (ADR 0072) holds across a keyguard restart, on anvil +
 * libp2p. Every audit reverts `NotKeyguard` (sent from an account the owner never approved). The
 * executor is served once, its audit reverts, it is cut off. The keyguard is stopped and a new one
 * started on the same data dir and node, whose chain writes fail (fault injection:
 * `recordFastPathGrant` fails as an unreachable RPC does; reads work), so the re-sent audit
 * cannot revert again to re-arm the cut-off. The executor asks for another capsule at once: it must
 * still be refused `audit-failed`. The previous code kept the cut-off in memory only and re-armed it
 * when the re-sent audit reverted: until then (here, as long as the writes fail) the executor got
 * keys inline again.
 */
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard, type Keyguard, type KeyguardEvent } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import {
  auditsDown,
  type Chain,
  chainClientFor,
  quietLogger,
  registerExecutor,
  until,
} from './helpers/world.ts'

let w: KeyguardWorld
let chain: Chain | undefined

beforeAll(async () => {
  w = await keyguardWorld({
    executors: 2,
    capsules: 3,
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

/** A keyguard on the world's data dir and node whose audit writes fail. */
function restarted(events: KeyguardEvent[]): Keyguard {
  const chainClient = auditsDown(chainClientFor(w.chain, w.chain.other))
  const kg = createKeyguard({
    dataDir: w.parts.dir,
    confirmations: 0,
    startBlock: w.chain.addresses.deployBlock,
    pollIntervalMs: 200,
    fastPath: { enabled: true, auditRetryBaseMs: 100 },
  })({
    sealer: w.parts.sealer,
    keyStore: w.parts.keyStore,
    journal: w.parts.journal,
    chain: chainClient,
    libp2p: w.kgNode,
    logger: quietLogger,
  })
  for (const type of ['fast-path-granted', 'audit-alert']) {
    kg.events.addEventListener(type, (e) => events.push((e as CustomEvent<KeyguardEvent>).detail))
  }
  w.defer('restarted keyguard', () => kg.stop())
  return kg
}

describe('fast path: the audit-failed cut-off across a restart', () => {
  it('still refuses the cut-off executor right after a restart, before its audit is re-sent', async () => {
    const req = (capsuleId: string) =>
      w.signed({ capsuleId, fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } })
    expect(answer(await w.ask(req(w.capsules[0] as string)))).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'audit-alert'), 15_000)
    expect(answer(await w.ask(req(w.capsules[1] as string)))).toBe('policy-denied:audit-failed')

    await w.keyguard.stop()
    const events: KeyguardEvent[] = []
    const kg = restarted(events)
    await kg.start()
    // The kept audit is being re-sent and fails (the RPC refuses writes): nothing re-armed it.
    await until(() => events.some((e) => e.type === 'audit-alert'), 15_000)
    expect(events.find((e) => e.type === 'audit-alert')).toMatchObject({ reason: 'failed' })
    expect(answer(await w.ask(req(w.capsules[2] as string)))).toBe('policy-denied:audit-failed')
    expect(events.filter((e) => e.type === 'fast-path-granted')).toEqual([])

    // Another executor is served.
    const second = w.executors[1]
    if (second === undefined) throw new Error('no second executor')
    const theirs = w.signed({
      capsuleId: w.capsules[2] as string,
      side: second,
      signer: w.chain.other,
    })
    expect(answer(await w.ask(theirs, second.node))).toBe('granted')
    await kg.stop()
  }, 90_000)
})
