/**
 * Fast-path audits are batched: a burst of 20 releases (20 capsules, one executor) is audited
 * in a few transactions (`recordFastPathGrants`), each grant exactly once on chain, and no grant
 * is released a second time over `/digicap/key-release/1.0.0`. Before, each audit was its own
 * transaction, one block each (20 blocks for the burst). Real anvil, libp2p on loopback, the
 * software sealer; the whole keyguard (grant watcher included).
 */
import { hexlify } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor, until } from './helpers/world.ts'

const BURST = 20

let w: KeyguardWorld
const recorded = () =>
  w.events.flatMap((e) =>
    e.type === 'audit-recorded' ? [{ grantId: e.grantId, transactionHash: e.transactionHash }] : [],
  )

beforeAll(async () => {
  w = await keyguardWorld({
    capsules: BURST,
    keyguard: { pollIntervalMs: 200, fastPath: { enabled: true } },
    events: ['audit-recorded'],
  })
  // Connected before the burst: 20 first dials at once may race into two connections, and
  // libp2p then closes one with its streams (not what is tested here).
  await w.exec.node.dial(w.kgNode.peerId)
  // 40 transactions and 20 key wraps: generous for a loaded box running the whole suite.
}, 300_000)

afterAll(() => w?.stop())

const ask = (capsuleId: string) => w.ask(w.signed({ capsuleId }), undefined, { timeout: 30_000 })

describe('fast-path audits in batches', () => {
  it(`audits a burst of ${BURST} releases in a few blocks, each exactly once`, async () => {
    const from = await w.chain.anvil.provider.getBlockNumber()
    const answers = await Promise.all(w.capsules.map(ask))
    const grantIds = answers.map((a) => (a.status === 'granted' ? hexlify(a.grantId) : a.status))
    expect(grantIds.every((g) => g.startsWith('0x'))).toBe(true)
    await until(() => recorded().length >= BURST, 60_000)

    // Each answered grant recorded once, in a few transactions (blocks).
    expect(
      recorded()
        .map((r) => r.grantId)
        .sort(),
    ).toEqual([...grantIds].sort())
    const txs = new Set(recorded().map((r) => r.transactionHash))
    const blocks = new Set<number>()
    for (const hash of txs) {
      const receipt = await w.chain.anvil.provider.getTransactionReceipt(hash)
      blocks.add(receipt?.blockNumber as number)
    }
    console.log(`${BURST} fast-path audits in ${txs.size} transactions, ${blocks.size} blocks`)
    expect(blocks.size).toBeLessThanOrEqual(5)

    // On chain: exactly one fast-path AccessGranted per grant, each nonce spent once.
    const head = await w.chain.anvil.provider.getBlockNumber()
    const logs = await chainClientFor(w.chain).grantLogs(from + 1, head, w.capsules)
    expect(logs.every((l) => l.fastPath)).toBe(true)
    expect(logs.map((l) => l.grantId).sort()).toEqual([...grantIds].sort())

    // The grant watcher sees those logs and releases none of them again.
    await w.keyguard.poll()
    await w.keyguard.idle()
    expect(w.exec.releases).toHaveLength(0)
    expect(await w.parts.journal.pending()).toEqual([])
    for (const grantId of grantIds) {
      expect((await w.parts.journal.get(grantId))?.via).toBe('fast-path')
    }
  }, 120_000)
})
