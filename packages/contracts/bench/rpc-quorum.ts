/**
 * What pinning costs a quorum read. Three RPC URLs (one anvil, so they agree), and per request
 * the fast path's shape: three contract reads in parallel on every RPC. Baseline, measured in
 * the same run and interleaved: the same three reads unpinned at `latest` (`agree`, what the
 * keyguard did before pinning). A block is mined every `blockEvery` requests and noticed, as the
 * keyguard notices its own audit receipt, so the pin moves during the run.
 *
 * Run: `node bench/rpc-quorum.ts [requests] [blockEvery]`.
 */
import { Contract, type JsonRpcApiProvider } from 'ethers'
import { startAnvil } from '../src/anvil.ts'
import { deployDigicap } from '../src/deploy.ts'
import { nodeRegistryAbi } from '../src/index.ts'
import { createProvider } from '../src/provider.ts'
import { createRpcQuorum } from '../src/quorum/ethers-rpc-quorum.ts'

const requests = Number(process.argv[2] ?? 300)
const blockEvery = Number(process.argv[3] ?? 10)
const anvil = await startAnvil()
try {
  const addresses = await deployDigicap(anvil.signers[0] as never)
  const rpcs = createRpcQuorum({
    providers: [1, 2, 3].map(() => createProvider(anvil.rpcUrl, 31337n)),
  })
  const node = anvil.signers[1]?.address as string
  const isActive = (provider: JsonRpcApiProvider, blockTag: string | number) =>
    new Contract(addresses.nodeRegistry, nodeRegistryAbi as never, provider)
      .getFunction('isActive')(node, 1, { blockTag })
      .then(Boolean)
  const pinned = () =>
    Promise.all([1, 2, 3].map(() => rpcs.read('isActive', (c) => isActive(c.provider, c.blockTag))))
  const unpinned = () =>
    Promise.all([1, 2, 3].map(() => rpcs.agree('isActive', (p) => isActive(p, 'latest'))))
  const times = { pinned: [] as number[], unpinned: [] as number[] }
  const time = async (name: keyof typeof times, run: () => Promise<unknown>) => {
    const t = performance.now()
    await run()
    times[name].push(performance.now() - t)
  }
  for (let i = 0; i < 20; i++) await Promise.all([pinned(), unpinned()])
  for (let i = 0; i < requests; i++) {
    if (i % blockEvery === 0) {
      await anvil.provider.send('evm_mine', [])
      rpcs.notice(await anvil.provider.getBlockNumber())
    }
    // Alternate which goes first, so neither always meets a warm connection.
    if (i % 2 === 0) {
      await time('pinned', pinned)
      await time('unpinned', unpinned)
    } else {
      await time('unpinned', unpinned)
      await time('pinned', pinned)
    }
  }
  const p = (xs: number[], q: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] as number
  const row = (name: string, xs: number[]) =>
    `${name.padEnd(44)} p50 ${p(xs, 0.5).toFixed(2).padStart(7)} ms   p99 ${p(xs, 0.99).toFixed(2).padStart(7)} ms`
  console.log(
    `3 reads × 3 RPCs per request, ${requests} requests, a new block noticed every ${blockEvery}`,
  )
  console.log(row('baseline: unpinned at latest (agree)', times.unpinned))
  console.log(row('pinned to one agreed block (read)', times.pinned))
  console.log(
    `pinned / unpinned at p50: ×${(p(times.pinned, 0.5) / p(times.unpinned, 0.5)).toFixed(2)}`,
  )
} finally {
  await anvil.stop()
}
