/**
 * A fast-path audit that fails on the keyguard operator's side blames no executor (docs/adr/0084),
 * on anvil + libp2p. The keyguard records audits as `other`, which the owner has not approved:
 * every audit reverts `NotKeyguard`. The executor is served once; its audit reverts. Nobody is
 * cut off and nothing is marked against the executor (no `revertedAt`); instead the whole fast
 * path halts (`busy` `audits-halted`, for every executor) with a typed alert and status. The
 * owner then approves `other` and the keyguard restarts on the same data dir: the held audit
 * lands and the same executor is served. The previous code cut the executor off for 24 h,
 * persisted across restarts, and kept serving every other executor keys whose audits reverted.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard, type Keyguard, type KeyguardEvent } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import {
  type Chain,
  chainClientFor,
  quietLogger,
  registerExecutor,
  send,
  until,
} from './helpers/world.ts'

let w: KeyguardWorld
let chain: Chain | undefined

beforeAll(async () => {
  w = await keyguardWorld({
    executors: 2,
    capsules: 2,
    keyguard: { pollIntervalMs: 200, fastPath: { enabled: true } },
    events: ['fast-path-granted', 'audit-recorded', 'audit-alert', 'fast-path-halted'],
    // Audits signed by `other`, which the owner has not approved (yet): they revert.
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

async function auditFiles(): Promise<Record<string, unknown>[]> {
  const dir = join(w.parts.dir, 'fast-path-audit')
  const names = (await readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.'))
  return Promise.all(names.map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8'))))
}

function restarted(events: KeyguardEvent[]): Keyguard {
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
  for (const type of ['fast-path-granted', 'audit-recorded', 'fast-path-halted']) {
    kg.events.addEventListener(type, (e) => events.push((e as CustomEvent<KeyguardEvent>).detail))
  }
  w.defer('restarted keyguard', () => kg.stop())
  return kg
}

describe('fast path: an audit that fails on the operator side (docs/adr/0084)', () => {
  it('cuts nobody off, halts the fast path with an alert, and serves again after the fix and a restart', async () => {
    const req = (capsuleId = w.capsuleId) =>
      w.signed({ capsuleId, fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } })
    expect(answer(await w.ask(req()))).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'audit-alert'), 15_000)
    expect(w.events.find((e) => e.type === 'audit-alert')).toMatchObject({
      error: 'NotKeyguard',
      reason: 'operator-not-approved',
      blame: 'operator',
    })
    expect(w.events.find((e) => e.type === 'fast-path-halted')).toMatchObject({
      halt: { reason: 'operator-not-approved', error: 'NotKeyguard' },
    })
    const status = await w.keyguard.status()
    expect(status.fastPath.halted).toMatchObject({ reason: 'operator-not-approved' })
    expect(status.fastPath.halted?.hint).toMatch(/setOperator/)

    // Halted for everyone, with no cut-off: the same executor and another one get `busy`.
    expect(answer(await w.ask(req(w.capsules[1] as string)))).toBe('busy:audits-halted')
    const second = w.executors[1]
    if (second === undefined) throw new Error('no second executor')
    const theirs = w.signed({
      capsuleId: w.capsules[1] as string,
      side: second,
      signer: w.chain.other,
    })
    expect(answer(await w.ask(theirs, second.node))).toBe('busy:audits-halted')
    expect(w.events.filter((e) => e.type === 'fast-path-granted')).toHaveLength(1)
    // Nothing on disk against the executor: the held audit is marked as the operator's failure.
    const files = await auditFiles()
    expect(files).toHaveLength(1)
    expect(files[0]?.revertedAt).toBeUndefined()
    expect(files[0]).toMatchObject({ operatorError: 'NotKeyguard' })

    // The operator fixes it (the owner approves `other`) and restarts the keyguard.
    await w.keyguard.stop()
    await send(
      w.chain.c.capsuleRegistry.connect(w.chain.owner).setOperator(w.chain.other.address, true),
    )
    const events: KeyguardEvent[] = []
    const kg = restarted(events)
    await kg.start()
    // Halted from the start until the held audit lands, then serving.
    await until(() => events.some((e) => e.type === 'audit-recorded'), 20_000)
    await until(() => events.some((e) => e.type === 'fast-path-halted' && e.halt === undefined))
    expect((await kg.status()).fastPath.halted).toBeUndefined()
    expect(answer(await w.ask(req(w.capsules[1] as string)))).toBe('granted')
    await kg.stop()
  }, 90_000)
})
