/**
 * The grant watcher behind an RPC whose `eth_getLogs` backend lags (real anvil; the lag is a
 * JSON-RPC proxy in front of it, the fault injected).
 *
 * A load-balanced RPC can serve `eth_blockNumber` and `eth_getBlockByNumber` from a node that has
 * the newest blocks and `eth_getLogs` from one whose log index has not reached them: a range
 * query answers `[]` for those blocks. The block-hash check cannot see it (the blocks are right),
 * so the cursor moved past the grant and it was never handed over. Now the last blocks of a
 * range are read by block hash (EIP-234), which a node without the block answers with an error:
 * the range is read again once the index has it (ADR 0085).
 */
import {
  type LaggingLogIndex,
  laggingLogIndex,
  type RpcProxy,
  startRpcProxy,
} from '@digicap/contracts/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type GrantLog, grantWatcher } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor, keyguardParts, requestAccess } from './helpers/world.ts'

let w: KeyguardWorld
let proxy: RpcProxy
/** The proxy's log index: its logs above `lag.indexed` are withheld. */
let lag: LaggingLogIndex

beforeAll(async () => {
  w = await keyguardWorld({ keyguard: false })
  const anvil = w.chain.anvil.provider
  lag = laggingLogIndex(async (hash) => (await anvil.getBlock(hash))?.number)
  proxy = await startRpcProxy(w.chain.anvil.rpcUrl, lag.rewrite)
}, 60_000)

afterAll(async () => {
  await proxy?.close()
  await w?.stop()
})

describe('grant watcher behind a lagging eth_getLogs', () => {
  it('hands over a grant its RPC withheld once the log index has its block', async () => {
    const parts = await keyguardParts()
    w.defer('data dir', parts.cleanup)
    const provider = w.chain.anvil.provider
    const handed: GrantLog[] = []
    const watcher = grantWatcher({
      dataDir: parts.dir,
      confirmations: 0,
      startBlock: w.chain.addresses.deployBlock,
      pollIntervalMs: 60_000,
    })({
      chain: chainClientFor(w.chain, w.chain.owner, [proxy.url]),
      keyStore: w.parts.keyStore,
      onGrant: async (log) => {
        handed.push(log)
      },
    })
    await watcher.start()
    try {
      await watcher.poll()
      lag.indexed = await provider.getBlockNumber()
      const grantId = await requestAccess(w.chain, w.capsuleId, w.exec.newEphemeral())
      await provider.send('anvil_mine', ['0x3'])
      // The index lags: the grant's block is not in it. This poll must not move past it.
      await watcher.poll().catch(() => 0)
      expect(handed.map((l) => l.grantId)).not.toContain(grantId.toLowerCase())
      // The index catches up.
      lag.indexed = Number.POSITIVE_INFINITY
      await provider.send('evm_mine', [])
      await watcher.poll()
      expect(handed.map((l) => l.grantId)).toContain(grantId.toLowerCase())
      expect(watcher.cursor()?.number).toBe(await provider.getBlockNumber())
    } finally {
      await watcher.stop()
    }
  }, 60_000)
})
