/**
 * An audit revert that is the executor's doing still cuts it off, and the cut-off holds across
 * restarts (ADR 0072; docs/adr/0084), on anvil + libp2p with a real `SignedRequestExpired`. The
 * executor asks with a request that expires 70 s ahead. The first keyguard's audit writes fail
 * (fault injection: `recordFastPathGrant` fails as an unreachable RPC does), so the audit stays
 * journaled; the keyguard stops and the chain's clock moves past the expiry. A second keyguard
 * with a working RPC re-sends the audit at start: the AccessController reverts
 * `SignedRequestExpired`; the executor is cut off (`audit-failed`) and the file marked
 * `revertedAt`, while the fast path keeps serving others. A third keyguard whose writes fail
 * again (so no re-sent audit can re-arm anything) still refuses the executor from its first
 * request.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type ChainClient,
  createKeyguard,
  type Keyguard,
  type KeyguardEvent,
} from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import {
  auditsDown,
  chainClientFor,
  quietLogger,
  registerExecutor,
  until,
} from './helpers/world.ts'

let w: KeyguardWorld

beforeAll(async () => {
  w = await keyguardWorld({
    executors: 2,
    capsules: 3,
    keyguard: { pollIntervalMs: 200, fastPath: { enabled: true, auditRetryBaseMs: 50 } },
    events: ['fast-path-granted', 'audit-recorded', 'audit-alert'],
    chainClient: (real) => auditsDown(real),
    prepare: async (world) => {
      await registerExecutor(world.chain, world.chain.other, world.executors[1]?.node as never)
    },
  })
}, 90_000)

afterAll(() => w?.stop())

const answer = (res: Awaited<ReturnType<KeyguardWorld['ask']>>) =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason ?? ''}` : res.status

/** A keyguard on the world's data dir and node. */
function restarted(events: KeyguardEvent[], chain: ChainClient): Keyguard {
  const kg = createKeyguard({
    dataDir: w.parts.dir,
    confirmations: 0,
    startBlock: w.chain.addresses.deployBlock,
    pollIntervalMs: 200,
    fastPath: { enabled: true, auditRetryBaseMs: 50 },
  })({
    sealer: w.parts.sealer,
    keyStore: w.parts.keyStore,
    journal: w.parts.journal,
    chain,
    libp2p: w.kgNode,
    logger: quietLogger,
  })
  for (const type of ['fast-path-granted', 'audit-alert', 'audit-recorded', 'fast-path-halted']) {
    kg.events.addEventListener(type, (e) => events.push((e as CustomEvent<KeyguardEvent>).detail))
  }
  w.defer('restarted keyguard', () => kg.stop())
  return kg
}

describe('fast path: an executor-attributable audit revert (docs/adr/0084)', () => {
  it('cuts the executor off on SignedRequestExpired and keeps it cut off across a restart', async () => {
    const req = (capsuleId: string, expiresIn: number) =>
      w.signed({
        capsuleId,
        expiresIn,
        fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) },
      })
    expect(answer(await w.ask(req(w.capsules[0] as string, 70)))).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'audit-alert'), 15_000)
    expect(w.events.find((e) => e.type === 'audit-alert')).toMatchObject({ reason: 'failed' })
    await w.keyguard.stop()
    // The chain's clock passes the request's expiry.
    await w.chain.anvil.provider.send('evm_increaseTime', [90])
    await w.chain.anvil.provider.send('evm_mine', [])

    const events: KeyguardEvent[] = []
    const kg = restarted(events, chainClientFor(w.chain))
    await kg.start()
    await until(() => events.some((e) => e.type === 'audit-alert'), 15_000)
    expect(events.find((e) => e.type === 'audit-alert')).toMatchObject({
      error: 'SignedRequestExpired',
      blame: 'executor',
    })
    expect(events.some((e) => e.type === 'fast-path-halted')).toBe(false)
    expect(answer(await w.ask(req(w.capsules[1] as string, 300)))).toBe(
      'policy-denied:audit-failed',
    )
    const dir = join(w.parts.dir, 'fast-path-audit')
    const names = (await readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.'))
    const files = await Promise.all(
      names.map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8'))),
    )
    expect(files.filter((f) => typeof f.revertedAt === 'string')).toHaveLength(1)
    // Another executor is served, and its audit lands.
    const second = w.executors[1]
    if (second === undefined) throw new Error('no second executor')
    const theirs = w.signed({
      capsuleId: w.capsules[1] as string,
      side: second,
      signer: w.chain.other,
      expiresIn: 300,
    })
    expect(answer(await w.ask(theirs, second.node))).toBe('granted')
    await until(() => events.some((e) => e.type === 'audit-recorded'), 15_000)
    await kg.stop()

    // Restarted again with failing writes: the cut-off holds from the first request.
    const again: KeyguardEvent[] = []
    const third = restarted(again, auditsDown(chainClientFor(w.chain)))
    await third.start()
    expect(answer(await w.ask(req(w.capsules[2] as string, 300)))).toBe(
      'policy-denied:audit-failed',
    )
    expect(again.filter((e) => e.type === 'fast-path-granted')).toEqual([])
    await third.stop()
  }, 90_000)
})
