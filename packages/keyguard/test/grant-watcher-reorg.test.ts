/**
 * The grant watcher across a reorg that lands while it scans (real anvil, `anvil_reorg`).
 *
 * The watcher reads the logs of a range, then the hash of the range's last block for its cursor.
 * A reorg between the two used to leave the cursor on the new branch while the logs came from the
 * old one: the new branch's grants in that range were never scanned (a grant lost for good, its
 * executor's fee paid for nothing). Now the block is read before and after the logs, and a range
 * whose last block changed meanwhile is scanned again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ChainClient, type GrantLog, grantWatcher } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor, keyguardParts, requestAccess } from './helpers/world.ts'

let w: KeyguardWorld

beforeAll(async () => {
  w = await keyguardWorld({ keyguard: false })
}, 60_000)

afterAll(() => w?.stop())

describe('grant watcher: a reorg between the logs and the cursor', () => {
  it('scans the new branch of the range again: its grant is handed over, the cursor is on it', async () => {
    const parts = await keyguardParts()
    w.defer('data dir', parts.cleanup)
    const provider = w.chain.anvil.provider
    const ac = w.chain.c.accessController
    // The grant of the new branch: signed now, put in by the reorg.
    const request = await ac
      .connect(w.chain.executor)
      .requestAccess.populateTransaction(
        w.capsuleId,
        w.exec.newEphemeral(),
        w.chain.measurement,
        '0x',
      )
    let reorgNext = false
    let newGrant: string | undefined
    const real = chainClientFor(w.chain)
    const chain: ChainClient = Object.create(real)
    chain.grantLogs = async (from, to, capsules) => {
      const logs = await real.grantLogs(from, to, capsules)
      if (reorgNext && logs.length > 0) {
        reorgNext = false
        // The block of the old grant is replaced by one with another grant.
        const nonce = await provider.getTransactionCount(w.chain.executor.address, 'latest')
        const signed = await w.chain.executor.signTransaction(
          await w.chain.executor.populateTransaction({
            ...request,
            gasLimit: 1_000_000,
            nonce: nonce - 1,
          }),
        )
        await provider.send('anvil_reorg', [1, [[signed, 0]]])
        const parsed = (
          await provider.getLogs({ address: await ac.getAddress(), fromBlock: to, toBlock: to })
        )
          .map((l) => ac.interface.parseLog(l))
          .find((l) => l?.name === 'AccessGranted')
        newGrant = String(parsed?.args[0]).toLowerCase()
      }
      return logs
    }
    const handed: GrantLog[] = []
    const watcher = grantWatcher({
      dataDir: parts.dir,
      confirmations: 0,
      startBlock: w.chain.addresses.deployBlock,
      pollIntervalMs: 60_000,
    })({
      chain,
      keyStore: w.parts.keyStore,
      onGrant: async (log) => {
        handed.push(log)
      },
    })
    await watcher.start()
    await watcher.poll()
    const oldGrant = await requestAccess(w.chain, w.capsuleId, w.exec.newEphemeral())
    reorgNext = true
    await watcher.poll()
    await watcher.poll()
    await watcher.stop()
    expect(newGrant).toMatch(/^0x[0-9a-f]{64}$/)
    expect(newGrant).not.toBe(oldGrant)
    const ids = handed.map((l) => l.grantId)
    expect(ids).toContain(newGrant)
    // The old branch's grant was read but never handed over: its block was gone.
    expect(ids).not.toContain(oldGrant)
    // The cursor's block is the new branch's.
    const cursor = watcher.cursor()
    expect(cursor?.hash).toBe((await provider.getBlock(cursor?.number ?? 0))?.hash?.toLowerCase())
  }, 60_000)
})
