/**
 * The fast path under a stranger flood: 100 peer ids in a separate process (test/fixtures/
 * flood-child.ts), all from this host, send requests signed by fresh keys for a capsule this
 * keyguard holds, forged requests naming the registered executor, and hold half-frames; a
 * stranger whose connection is cut reconnects, and after 3 failed exchanges in a row takes a
 * fresh key (a new peer id), as an attacker whose peer ids are free would. Meanwhile the
 * registered executor, on the same host, asks for keys. The keyguard's libp2p node has the fast
 * path's connection guard as its connection gater (default budgets), as pi-node's has. Prints, measured in the same run: the keyguard process's RSS under the
 * flood against its idle RSS (goal ≤ 2×), and the executor's release latency under the flood
 * against without it. Keyguard: anvil + swtpm (tpm2 sealer) + libp2p on loopback.
 *
 * The executor asks at a steady 2 requests a second (one job every 500 ms, each after the
 * previous audit landed), well under its own quota of 30 burst / 10 a second: what is measured
 * is the latency a flood adds, not the executor's own rate limit.
 *
 * No-flood and flood samples are taken in alternating rounds (the flood held between its rounds:
 * no new request or held frame, its connections left open), so that the other loads of a shared machine, which drift over
 * seconds, weigh on both sides alike; the ratio is also printed per round.
 *
 * Run: `node --expose-gc bench/fast-path-flood.ts [peers] [floodSeconds] [pinned|shared]`
 * (default 100 peers, 20 s, pinned). With `FLOOD_CPU_PROF=<dir>`, the keyguard process's CPU
 * is profiled during each flood round (`<dir>/flood-round-<n>.cpuprofile`, for Chrome DevTools
 * or `node bench/cpu-profile-summary.ts <file>`). With `FLOOD_GUARD=off`, the guard's budgets
 * are never spent (strangers are not cut: the code before ADR 0030), for a before/after.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { availableParallelism, loadavg } from 'node:os'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import {
  type AccessResponse,
  createConnectionGuard,
  fastPathProtocol,
  request,
  signAccessRequest,
} from '@digicap/protocol'
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
/**
 * `pinned` (default): this process (keyguard, executor) and what it starts (anvil, swtpm) run
 * on CPU 0, the flood process on CPU 1, as an attacker's machines are not the keyguard's; other
 * work on the box still runs on both. `shared`: every process on any CPU, so the flood
 * process's own CPU (100 nodes signing with fresh keys) competes with the keyguard's.
 */
const cpuMode = process.argv[4] === 'shared' || availableParallelism() < 2 ? 'shared' : 'pinned'
if (cpuMode === 'pinned') execFileSync('taskset', ['-a', '-cp', '0', String(process.pid)])
/** Executor requests per round and side; rounds fill `floodSeconds` of flood at the pace. */
const perRound = 8
const settleMs = 1000
const rounds = Math.max(2, Math.round((floodSeconds * 1000) / (perRound * 500 + 1000)))
/** The executor's pace: one request every `paceMs` (2 a second). */
const paceMs = 500
const MB = 1024 * 1024

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
// memoryUsage.rss() reads only the RSS (memoryUsage() walks the heap spaces too).
const rss = () => process.memoryUsage.rss()
/** Per-stage trace of the executor's granted requests (ms since its evaluation started). */
let traces: Readonly<Record<string, number>>[] = []
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? Number.NaN
}
const stageMedians = (ts: Readonly<Record<string, number>>[]): string =>
  [
    'stored',
    'peer',
    'verified',
    'locked',
    'chain',
    'authorized',
    'unwrapped',
    'journaled',
    'sealed',
  ]
    .map((k) => `${k} ${median(ts.flatMap((t) => (t[k] === undefined ? [] : [t[k]]))).toFixed(1)}`)
    .join(' → ')

/** The keyguard's guard, with pi-node's default budgets; its gater is the node's. */
const guardOff = process.env.FLOOD_GUARD === 'off'
const unspent = { capacity: 1e9, refillPerSecond: 1e9 }
const guard = createConnectionGuard(guardOff ? { perPeer: unspent, perHost: unspent } : {})()
const [chain, tpm, kgNode, exec] = await Promise.all([
  setupChain(),
  startSwtpm(),
  createNode({ connectionGater: guard.gater }),
  executorSide(),
])
/** CPU profiles of the flood rounds, when asked for. */
const profileDir = process.env.FLOOD_CPU_PROF
const profiler = profileDir === undefined ? undefined : new Session()
profiler?.connect()
await profiler?.post('Profiler.enable')
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
    // Only requests that got as far as sealing are the executor's (strangers stop earlier).
    fastPath: {
      enabled: true,
      trace: (marks) => {
        if (marks.sealed !== undefined) traces.push(marks)
      },
    },
  })({ ...parts, chain: chainClientFor(chain), libp2p: kgNode, guard, logger: quietLogger })
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
      let res: AccessResponse
      try {
        res = await request(exec.node, kgNode.peerId, fastPathProtocol, req, { timeout: 30_000 })
      } catch (err) {
        // A failed exchange (e.g. a stream reset) is counted, not timed.
        const k = `error:${(err as { code?: string }).code ?? (err as Error).name}`
        refusals[k] = (refusals[k] ?? 0) + 1
        continue
      }
      times.push(performance.now() - t)
      if (res.status !== 'granted') {
        const k = `${res.reasonCode}:${res.reason ?? ''}`
        refusals[k] = (refusals[k] ?? 0) + 1
      }
      while (audited < granted) await new Promise((r) => setTimeout(r, 5))
    }
    return { times, refusals }
  }
  /** Samples of one kind (no flood, or under the flood) pooled over the rounds. */
  const pool = () => ({
    times: [] as number[],
    perRound: [] as number[],
    refusals: {} as Record<string, number>,
    stages: [] as Readonly<Record<string, number>>[],
    loop: [] as { p50: number; p99: number }[],
    /** This process's CPU time (user + system) and wall time over the rounds, µs and ms. */
    cpuMicros: 0,
    wallMs: 0,
  })
  const quiet = pool()
  const flooded = pool()
  const loop = monitorEventLoopDelay({ resolution: 10 })
  const measure = async (into: ReturnType<typeof pool>) => {
    traces = []
    loop.reset()
    loop.enable()
    const cpu = process.cpuUsage()
    const wall = performance.now()
    const r = await latencies(perRound)
    const used = process.cpuUsage(cpu)
    into.cpuMicros += used.user + used.system
    into.wallMs += performance.now() - wall
    loop.disable()
    into.times.push(...r.times)
    into.perRound.push(median(r.times))
    for (const [k, v] of Object.entries(r.refusals)) into.refusals[k] = (into.refusals[k] ?? 0) + v
    into.stages.push(...traces)
    into.loop.push({ p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6 })
  }

  await latencies(5) // warm-up
  global.gc?.()
  await new Promise((r) => setTimeout(r, 500))
  const idleRss = rss()

  const flood = startFlood(
    {
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
      // Strangers cut at the connection get few answers: the first round waits for these (or
      // 10 s) so that the measure starts with the flood in full swing.
      fillAnswers: 30,
      durationMs: 600_000,
      rotateAfterErrors: 3,
    },
    cpuMode === 'pinned' ? { cpus: '1' } : {},
  )
  let peakRss = rss()
  let sampling = false
  const sampler = setInterval(() => {
    if (sampling) peakRss = Math.max(peakRss, rss())
  }, 100)
  let counts: Record<string, number>
  let peerIds = peers
  let floodMs = 0
  try {
    await flood.ready
    flood.pause()
    // Rounds of no flood (the flood held) and flood, alternated, so that the other
    // loads on a shared machine, which drift over seconds, weigh on both sides alike.
    for (let round = 0; round < rounds; round++) {
      await new Promise((r) => setTimeout(r, settleMs))
      await measure(quiet)
      flood.resume()
      await profiler?.post('Profiler.start')
      const t = performance.now()
      sampling = true
      if (round === 0) {
        await Promise.race([flood.filled, new Promise((r) => setTimeout(r, 10_000))])
      } else {
        await new Promise((r) => setTimeout(r, settleMs))
      }
      await measure(flooded)
      sampling = false
      floodMs += performance.now() - t
      flood.pause()
      if (profiler !== undefined && profileDir !== undefined) {
        const { profile } = await profiler.post('Profiler.stop')
        await mkdir(profileDir, { recursive: true })
        await writeFile(`${profileDir}/flood-round-${round}.cpuprofile`, JSON.stringify(profile))
      }
    }
    flood.resume()
    flood.stop()
    counts = await flood.done
    peerIds = await flood.peerIds
  } finally {
    clearInterval(sampler)
    flood.kill()
  }

  const answers = Object.entries(counts)
    .filter(([k]) => !k.startsWith('error'))
    .reduce((n, [, v]) => n + v, 0)
  const quietP50 = median(quiet.times)
  const row = (name: string, r: ReturnType<typeof pool>) => {
    const sorted = [...r.times].sort((a, b) => a - b)
    const p50 = percentile(sorted, 50)
    return `${name.padEnd(44)} p50 ${p50.toFixed(1).padStart(7)} ms   p99 ${percentile(sorted, 99).toFixed(1).padStart(7)} ms   ×${(p50 / quietP50).toFixed(2)} of no-flood p50`
  }
  const ratios = flooded.perRound.map((f, i) => f / (quiet.perRound[i] as number))
  console.log(
    `fast path under a stranger flood from ${peers} peer ids in a separate process (${rounds} rounds of ${perRound} executor requests without and with the flood, ${(floodMs / 1000).toFixed(1)} s of flood; guard ${guardOff ? 'OFF (strangers never cut)' : 'on (default budgets)'}; CPUs ${cpuMode === 'pinned' ? 'pinned: keyguard, anvil, swtpm on CPU 0, flood on CPU 1' : 'shared'}); anvil + swtpm + libp2p on loopback; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  )
  console.log(
    `strangers: ${answers} answers (${(answers / (floodMs / 1000)).toFixed(0)}/s), ${JSON.stringify(counts)}`,
  )
  const cut = guard.stats()
  console.log(
    `strangers cut at the connection: ${cut.admitted} fast-path streams let through (${(cut.admitted / (floodMs / 1000)).toFixed(1)}/s), ${cut.cut} connections closed, ${cut.refused} reconnects refused at the handshake, ${peerIds} peer ids used (${peerIds - peers} fresh after being cut); ${cut.coolingPeers} peers and ${cut.coolingHosts} hosts in their cooldown at the end`,
  )
  console.log(row('registered executor, no flood (baseline)', quiet))
  console.log(row('registered executor, under the flood', flooded))
  console.log(
    `  per round, flood p50 / no-flood p50: ${ratios.map((r) => `×${r.toFixed(2)}`).join(' ')} (median ×${median(ratios).toFixed(2)}; goal ≤ 1.5: ${median(flooded.times) <= 1.5 * quietP50 ? 'PASS' : 'MISS'})`,
  )
  for (const [name, r] of [
    ['no flood', quiet],
    ['under the flood', flooded],
  ] as const) {
    const n = Object.values(r.refusals).reduce((a, b) => a + b, 0)
    console.log(`  executor refused ${name}: ${n}${n > 0 ? ` ${JSON.stringify(r.refusals)}` : ''}`)
    console.log(`  stages ${name} (median ms since evaluation began): ${stageMedians(r.stages)}`)
    console.log(
      `  keyguard event-loop delay ${name}: p50 ${median(r.loop.map((l) => l.p50)).toFixed(1)} ms, p99 ${median(r.loop.map((l) => l.p99)).toFixed(1)} ms (medians over rounds)`,
    )
  }
  // The keyguard's own cost of the strangers, apart from what the box's other loads do to its
  // latency: its CPU per second with and without the flood, and the difference per stranger
  // exchange (answered or failed) the flood process counted.
  const cpuPerSecond = (r: ReturnType<typeof pool>) => r.cpuMicros / 1000 / (r.wallMs / 1000)
  const exchanges = Object.values(counts).reduce((n, v) => n + v, 0)
  const floodCpuMs = (flooded.cpuMicros - (quiet.cpuMicros * flooded.wallMs) / quiet.wallMs) / 1000
  const measuredShare = flooded.wallMs / floodMs
  const perExchange =
    floodCpuMs > 0
      ? `≈${(floodCpuMs / (exchanges * measuredShare)).toFixed(2)} ms CPU per stranger exchange`
      : 'no extra CPU under the flood (the process got less CPU: the box, not the keyguard, set the pace)'
  console.log(
    `keyguard process CPU (keyguard + executor side): no flood ${cpuPerSecond(quiet).toFixed(0)} ms/s, under the flood ${cpuPerSecond(flooded).toFixed(0)} ms/s; ${perExchange} (${exchanges} exchanges)`,
  )
  const ratio = peakRss / idleRss
  console.log(
    `keyguard RSS: idle ${(idleRss / MB).toFixed(0)} MB, peak under the flood ${(peakRss / MB).toFixed(0)} MB → ×${ratio.toFixed(2)} (goal ≤ 2×: ${ratio <= 2 ? 'PASS' : 'MISS'})`,
  )
  await keyguard.stop()
} finally {
  await Promise.all([kgNode.stop(), exec.stop(), chain.anvil.stop(), tpm.stop()])
  await parts.cleanup()
}
