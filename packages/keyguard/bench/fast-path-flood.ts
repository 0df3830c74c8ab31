/**
 * The fast path under a stranger flood: 100 peer ids in a separate process (test/fixtures/
 * flood-child.ts) send requests signed by fresh keys for a capsule this keyguard holds, forged
 * requests naming the registered executor, and hold half-frames; meanwhile the registered
 * executor asks for keys. Prints, measured in the same run: the keyguard process's RSS under the
 * flood against its idle RSS (goal ≤ 2×), and the executor's release latency under the flood
 * against without it. Keyguard: anvil + swtpm (tpm2 sealer) + libp2p on loopback.
 *
 * The executor asks at a steady 2 requests a second (one job every 500 ms, each after the
 * previous audit landed), well under its own quota of 30 burst / 10 a second: what is measured
 * is the latency a flood adds, not the executor's own rate limit.
 *
 * Run: `node bench/fast-path-flood.ts [peers] [floodSeconds]` (default 100 peers, 20 s).
 */
import { fastPathProtocol, request, signAccessRequest } from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getBytes, randomBytes } from 'ethers'
import { createKeyguard, tpm2Sealer } from '../src/index.ts'
import { startSwtpm } from '../src/testing.ts'
import { startFlood } from '../test/helpers/flood.ts'
import {
  chainClientFor,
  createNode,
  executorSide,
  keyguardParts,
  quietLogger,
  registerCapsule,
  registerExecutor,
  setupChain,
  storeKey,
} from '../test/helpers/world.ts'

const peers = Number(process.argv[2] ?? 100)
const floodSeconds = Number(process.argv[3] ?? 20)
const samples = 20
/** The executor's pace: one request every `paceMs` (2 a second). */
const paceMs = 500
const MB = 1024 * 1024

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
const rss = () => process.memoryUsage().rss

const [chain, tpm, kgNode, exec] = await Promise.all([
  setupChain(),
  startSwtpm(),
  createNode(),
  executorSide(),
])
const sealer = tpm2Sealer({ tcti: tpm.tcti, createIfMissing: true, logger: quietLogger })
const parts = await keyguardParts(undefined, sealer)
try {
  await registerExecutor(chain, chain.executor, exec.node)
  const capsuleId = await registerCapsule(chain, kgNode)
  await storeKey(parts, capsuleId, randomBytes(32))
  const keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: 0,
    startBlock: chain.addresses.deployBlock,
    fastPath: { enabled: true },
  })({ ...parts, chain: chainClientFor(chain), libp2p: kgNode, logger: quietLogger })
  let audited = 0
  let granted = 0
  keyguard.events.addEventListener('audit-recorded', () => audited++)
  keyguard.events.addEventListener('fast-path-granted', () => granted++)
  await keyguard.start()
  await exec.node.peerStore.merge(kgNode.peerId, { multiaddrs: kgNode.getMultiaddrs() })
  const domain = {
    chainId: BigInt(chain.addresses.chainId),
    verifyingContract: chain.addresses.accessController as `0x${string}`,
  }
  const signRequest = () =>
    signAccessRequest(
      {
        capsuleId: getBytes(capsuleId),
        executor: getBytes(chain.executor.address),
        ephemeralKey: getBytes(exec.newEphemeral()),
        measurement: getBytes(chain.measurement),
        jobParamsHash: keccak_256(new Uint8Array(0)),
        fee: 0n,
        nonce: randomBytes(32),
        expiry: BigInt(Math.floor(Date.now() / 1000) + 120),
        jobParams: new Uint8Array(0),
      },
      domain,
      getBytes(chain.executor.privateKey),
    )
  // Each request waits for the previous audit to land (as an executor's next job would), and
  // for its turn at the executor's pace.
  const latencies = async (n: number) => {
    const times: number[] = []
    const refusals: Record<string, number> = {}
    const start = performance.now()
    for (let i = 0; i < n; i++) {
      const turn = start + i * paceMs - performance.now()
      if (turn > 0) await new Promise((r) => setTimeout(r, turn))
      const req = signRequest()
      const t = performance.now()
      const res = await request(exec.node, kgNode.peerId, fastPathProtocol, req, {
        timeout: 30_000,
      })
      times.push(performance.now() - t)
      if (res.status !== 'granted') {
        const k = `${res.reasonCode}:${res.reason ?? ''}`
        refusals[k] = (refusals[k] ?? 0) + 1
      }
      while (audited < granted) await new Promise((r) => setTimeout(r, 5))
    }
    times.sort((a, b) => a - b)
    return { p50: percentile(times, 50), p99: percentile(times, 99), refusals }
  }

  await latencies(5) // warm-up
  global.gc?.()
  await new Promise((r) => setTimeout(r, 500))
  const idleRss = rss()
  const quiet = await latencies(samples)

  const flood = startFlood({
    keyguard: {
      peerId: kgNode.peerId.toString(),
      addrs: kgNode.getMultiaddrs().map((a) => a.toString()),
    },
    capsuleId,
    measurement: chain.measurement,
    chainId: chain.addresses.chainId.toString(),
    accessController: chain.addresses.accessController,
    executor: chain.executor.address,
    peers,
    // Two held half-frames per peer (the keyguard allows 4 being read per peer): 200 held
    // streams in all, under the global cap of 256, so the strangers' requests still get read.
    holders: 2,
    fillAnswers: 10 * peers,
    durationMs: 600_000,
  })
  let peakRss = rss()
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, rss())
  }, 100)
  let flooded: Awaited<ReturnType<typeof latencies>>
  let counts: Record<string, number>
  let floodStarted = 0
  try {
    await flood.ready
    floodStarted = performance.now()
    await Promise.race([flood.filled, new Promise((r) => setTimeout(r, floodSeconds * 500))])
    flooded = await latencies(samples)
    const left = floodSeconds * 1000 - (performance.now() - floodStarted)
    if (left > 0) await new Promise((r) => setTimeout(r, left))
    flood.stop()
    counts = await flood.done
  } finally {
    clearInterval(sampler)
    flood.kill()
  }
  const floodMs = performance.now() - floodStarted

  const answers = Object.entries(counts)
    .filter(([k]) => !k.startsWith('error'))
    .reduce((n, [, v]) => n + v, 0)
  const row = (name: string, r: { p50: number; p99: number }) =>
    `${name.padEnd(44)} p50 ${r.p50.toFixed(1).padStart(7)} ms   p99 ${r.p99.toFixed(1).padStart(7)} ms   ×${(r.p50 / quiet.p50).toFixed(2)} of no-flood p50`
  console.log(
    `fast path under a stranger flood from ${peers} peer ids in a separate process (${(floodMs / 1000).toFixed(1)} s); anvil + swtpm + libp2p on loopback`,
  )
  console.log(
    `strangers: ${answers} answers (${(answers / (floodMs / 1000)).toFixed(0)}/s), ${JSON.stringify(counts)}`,
  )
  console.log(row('registered executor, no flood (baseline)', quiet))
  console.log(row('registered executor, under the flood', flooded))
  for (const [name, r] of [
    ['no flood', quiet],
    ['under the flood', flooded],
  ] as const) {
    const n = Object.values(r.refusals).reduce((a, b) => a + b, 0)
    console.log(`  executor refused ${name}: ${n}${n > 0 ? ` ${JSON.stringify(r.refusals)}` : ''}`)
  }
  const ratio = peakRss / idleRss
  console.log(
    `keyguard RSS: idle ${(idleRss / MB).toFixed(0)} MB, peak under the flood ${(peakRss / MB).toFixed(0)} MB → ×${ratio.toFixed(2)} (goal ≤ 2×: ${ratio <= 2 ? 'PASS' : 'MISS'})`,
  )
  await keyguard.stop()
} finally {
  await Promise.all([kgNode.stop(), exec.stop(), chain.anvil.stop(), tpm.stop()])
  await parts.cleanup()
}
