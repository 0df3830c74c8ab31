/**
 * ADR 0081 amendment: an audit that landed but is not `confirmations` deep keeps its file, and a
 * restarted keyguard re-tracks it from the chain (real anvil): its request's nonce is used and its
 * `AccessGranted` log is there, so it is "landed already", neither sent again nor taken for a
 * revert (no `audit-alert`, no cut-off). The previous code removed the file at the first receipt.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard, type KeyguardEvent } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor, quietLogger, until } from './helpers/world.ts'

let w: KeyguardWorld

const keyguardInit = () => ({
  confirmations: 5,
  pollIntervalMs: 100,
  fastPath: { enabled: true, maxExpirySeconds: 300 },
})

beforeAll(async () => {
  w = await keyguardWorld({
    capsules: 2,
    keyguard: keyguardInit(),
    events: ['fast-path-granted', 'audit-recorded', 'audit-alert'],
  })
}, 90_000)

afterAll(() => w?.stop())

const keptFiles = async () => {
  const dir = join(w.parts.dir, 'fast-path-audit')
  const names = (await readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.'))
  return Promise.all(names.map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8'))))
}

const answer = (res: Awaited<ReturnType<KeyguardWorld['ask']>>) =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason ?? ''}` : res.status

describe('a landed, unconfirmed fast-path audit across a restart (ADR 0081 amendment)', () => {
  it('is kept on disk and re-tracked as landed: not sent again, no alert, no cut-off', async () => {
    const req = (capsuleId: string) =>
      w.signed({ capsuleId, fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } })
    expect(answer(await w.ask(req(w.capsules[0] as string)))).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'audit-recorded'))
    const ac = w.chain.c.accessController
    expect(await ac.runCount(w.capsules[0] as string)).toBe(1n)
    const before = await keptFiles()
    expect(before).toHaveLength(1)
    expect(before[0].blockNumber).toBe(await w.chain.anvil.provider.getBlockNumber())
    const txCount = await w.chain.anvil.provider.getTransactionCount(w.chain.owner.address)

    await w.keyguard.stop()
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
    for (const type of ['audit-recorded', 'audit-alert', 'fast-path-granted']) {
      kg.events.addEventListener(type, (e) => events.push((e as CustomEvent<KeyguardEvent>).detail))
    }
    w.defer('restarted keyguard', () => kg.stop())
    await kg.start()
    await until(() => events.some((e) => e.type === 'audit-recorded'), 15_000)
    expect(events.some((e) => e.type === 'audit-alert')).toBe(false)
    // Found on chain, not sent again: no transaction of the operator, one run counted.
    expect(await w.chain.anvil.provider.getTransactionCount(w.chain.owner.address)).toBe(txCount)
    expect(await ac.runCount(w.capsules[0] as string)).toBe(1n)
    expect(await keptFiles()).toEqual(before)
    // Not cut off.
    expect(answer(await w.ask(req(w.capsules[1] as string)))).toBe('granted')
    await kg.stop()
  }, 60_000)
})
