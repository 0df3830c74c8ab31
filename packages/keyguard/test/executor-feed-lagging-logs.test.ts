/**
 * The executor feed behind an RPC whose `eth_getLogs` backend lags (real anvil; the lag is a
 * JSON-RPC proxy in front of it, the fault injected).
 *
 * The feed's cursor moves past every range it read. A range the lagging index answered with `[]`
 * used to be skipped for good: an executor that registered (or re-registered with a new peer id)
 * in those blocks was never learned, so the directory kept its old peer id or none. The range's
 * last blocks are now read by hash (ADR 0085), which a node without the block answers with an
 * error: the poll fails, the cursor stays, and the next poll learns the registration.
 */
import {
  type LaggingLogIndex,
  laggingLogIndex,
  type RpcProxy,
  startRpcProxy,
} from '@digicap/contracts/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { executorFeed } from '../src/fast-path/executor-feed.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor, type ExecutorSide, registerExecutor } from './helpers/world.ts'

let w: KeyguardWorld
let proxy: RpcProxy
/** The proxy's log index: its logs above `lag.indexed` are withheld. */
let lag: LaggingLogIndex

beforeAll(async () => {
  w = await keyguardWorld({ executors: 1, registerExecutor: false, capsules: 0, keyguard: false })
  const anvil = w.chain.anvil.provider
  lag = laggingLogIndex(async (hash) => (await anvil.getBlock(hash))?.number)
  proxy = await startRpcProxy(w.chain.anvil.rpcUrl, lag.rewrite)
}, 60_000)

afterAll(async () => {
  await proxy?.close()
  await w?.stop()
})

describe('executor feed behind a lagging eth_getLogs', () => {
  it('learns a registration its RPC withheld once the log index has its block', async () => {
    const provider = w.chain.anvil.provider
    const exec = w.executors[0] as ExecutorSide
    const learned = new Map<string, string>()
    const feed = executorFeed({
      startBlock: w.chain.addresses.deployBlock,
      pollIntervalMs: 600_000,
    })({
      chain: chainClientFor(w.chain, w.chain.owner, [proxy.url]),
      directory: {
        learn: (node, peerId) => {
          learned.set(node.toLowerCase(), Buffer.from(peerId).toString('hex'))
        },
      },
    })
    await feed.poll()
    expect(learned.size).toBe(0)
    // The index stops here; the executor registers in the blocks above it.
    lag.indexed = await provider.getBlockNumber()
    await registerExecutor(w.chain, w.chain.executor, exec.node)
    await provider.send('anvil_mine', ['0x3'])
    await feed.poll().catch(() => 0)
    expect(learned.has(w.chain.executor.address.toLowerCase())).toBe(false)
    // The index catches up: the next poll reads the blocks the lagging one could not.
    lag.indexed = Number.POSITIVE_INFINITY
    await provider.send('evm_mine', [])
    await feed.poll()
    expect(learned.get(w.chain.executor.address.toLowerCase())).toBe(
      Buffer.from(exec.node.peerId.toMultihash().bytes).toString('hex'),
    )
    await feed.stop()
  }, 60_000)
})
