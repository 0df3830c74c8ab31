/**
 * PBFT verdict latency on loopback, one OS process per member, against a raw libp2p round trip
 * between two of the same processes measured in the same run (issue #16 goal: ≤ 3 round trips
 * + 5 ms at n = 7), messages sent per verdict, and the CPU a member spends per decision.
 *
 *   node bench/pbft.ts            # n = 4, 7 and 31
 *   node bench/pbft.ts 4 7        # the committee sizes to measure
 *   BENCH_MODES=all node bench/pbft.ts 7    # every mode below on one mesh, taking turns
 *   BENCH_SIGNER=noble                      # members sign with capsule-core's noble signer, not
 *                                           # libsecp256k1Signer (the verifier node's; ADR 0098)
 *   BENCH_PROFILE=dir                       # member 1 writes a CPU profile of the timed decisions
 *   BENCH_PROFILE_US=500                    # its sampling interval in µs (default 100; a finer one
 *                                           # slows the member, and on a shared box a sample also
 *                                           # holds the time the member waited for a core)
 *
 * Modes (BENCH_MODES, comma-separated, default `on-request`; BENCH_CHECK=both is
 * `on-request,on-arrival`):
 * - `on-request`: signatures checked before use (ADR 0047), the certificate built and checked by
 *   the member that submits it (the view-0 leader) alone (ADR 0053);
 * - `at-decision`: checked before use, every member builds its certificate (ADR 0047's bench);
 * - `on-arrival`: every vote checked on arrival, every member builds its certificate (ADR 0040).
 *
 * The verdict is the committee's decision: the last member's `verdict` (2f+1 counted commits).
 * The certificate is the submitter's (the view-0 leader's `certify()`), timed from the same "go".
 *
 * The null exchange (pbft-member.ts), one before each timed decision on the same nodes: PBFT's
 * four message steps with 200-byte messages and nothing else (no signatures, encoding, state or
 * resends): what any implementation over these nodes needs on this box at least.
 *
 * CPU floors: with a core per member a verdict cannot come before the slowest member's CPU up to
 * its verdict + 3 RTT; with the n processes on this box's cores, before the sum of the members'
 * CPU from "go" to the end of the job / cores + 3 RTT.
 *
 * Each size: n child processes (bench/pbft-member.ts), each a libp2p node (TCP + noise + yamux)
 * with one PBFT endpoint; a full mesh where each pair is dialled once, `MESH_PARALLEL` dials at a
 * time per member; the round trip (200 bytes echoed on one kept stream, and on a fresh stream
 * per trip); a warm-up decision; then ROUNDS decisions on fresh job ids. A decision's time runs
 * from the parent's "go" to the last member's decision (wall clock shared by the processes).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { availableParallelism, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { PbftCertificateMode, PbftSignatureCheck } from '../src/index.ts'
import type { FromMember, ToMember } from './pbft-member.ts'

const roundsFor = (n: number) =>
  process.env.BENCH_ROUNDS !== undefined ? Number(process.env.BENCH_ROUNDS) : n >= 31 ? 5 : 10
const MESH_PARALLEL = 4
/** Decisions before the timed ones (module code warm, key tables built). */
const WARM_UPS = 3
/** Long enough that a slow decision is not cut by a view change (which would measure that). */
const VIEW_TIMEOUT = 600_000
/** A decision not done after this long prints every member's status (and again each period). */
const STALL_MS = Number(process.env.BENCH_STALL_MS ?? 60_000)
/** pbft-member.ts's null-exchange vote size, for the printout. */
const VOTE_BYTES_NOTE = '200-byte votes'
const MEMBER = fileURLToPath(new URL('./pbft-member.ts', import.meta.url))

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const now = () => performance.timeOrigin + performance.now()

interface Member {
  child: ChildProcess
  next<T extends FromMember['type']>(type: T): Promise<Extract<FromMember, { type: T }>>
  send(m: ToMember): void
}

function spawnMember(index: number, n: number): Member {
  const child = fork(MEMBER, [String(index), String(n)], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const inbox: FromMember[] = []
  const waiting: { type: string; resolve: (m: FromMember) => void }[] = []
  child.on('message', (m: FromMember) => {
    if (m.type === 'failed') {
      console.error(`member ${index}: ${m.error}`)
      process.exit(1)
    }
    const w = waiting.findIndex((x) => x.type === m.type)
    if (w >= 0) waiting.splice(w, 1)[0]?.resolve(m)
    else inbox.push(m)
  })
  child.on('exit', (code) => {
    if (code !== 0 && code !== null) {
      console.error(`member ${index} exited with ${code}`)
      process.exit(1)
    }
  })
  return {
    child,
    next(type) {
      const i = inbox.findIndex((m) => m.type === type)
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0] as never)
      return new Promise((resolve) => waiting.push({ type, resolve: resolve as never }))
    },
    send: (m) => child.send(m),
  }
}

type Mode = 'on-request' | 'at-decision' | 'on-arrival'
const MODES: Record<Mode, { check: PbftSignatureCheck; certificate: PbftCertificateMode }> = {
  'on-request': { check: 'before-use', certificate: 'on-request' },
  'at-decision': { check: 'before-use', certificate: 'at-decision' },
  'on-arrival': { check: 'on-arrival', certificate: 'at-decision' },
}

async function decide(members: Member[], job: number, mode: Mode) {
  for (const m of members) m.send({ type: 'job', job, viewTimeout: VIEW_TIMEOUT, ...MODES[mode] })
  await Promise.all(members.map((m) => m.next('ready')))
  const t0 = now()
  for (const m of members) m.send({ type: 'go', job })
  const decisions = Promise.all(members.map((m) => m.next('decided')))
  // A decision this late has lost its way: print what each member holds, and keep waiting.
  let printing = false
  const late = setInterval(async () => {
    if (printing) return
    printing = true
    console.error(`job ${job}: no decision after ${((now() - t0) / 1000).toFixed(0)} s; members:`)
    for (const [i, m] of members.entries()) {
      m.send({ type: 'status', job })
      console.error(`  ${i}: ${(await m.next('status')).report}`)
    }
    printing = false
  }, STALL_MS)
  const decided = await decisions.finally(() => clearInterval(late))
  const ms = Math.max(...decided.map((d) => d.at)) - t0
  const certified = decided.flatMap((d) => (d.certificate === undefined ? [] : [d.certificate]))
  // Let the last commits land before the sessions close (they count as sent).
  await new Promise((r) => setTimeout(r, 50))
  for (const m of members) m.send({ type: 'end', job })
  const ended = await Promise.all(members.map((m) => m.next('ended')))
  return {
    ms,
    sent: ended.reduce((s, e) => s + e.sent, 0),
    /** CPU to the verdict: the median member's, and the slowest member's. */
    cpuToDecision: median(decided.map((d) => d.cpuMs)),
    cpuToDecisionMax: Math.max(...decided.map((d) => d.cpuMs)),
    /** The submitter's certificate: wall time from "go", and its CPU to then. */
    certificateMs: Math.max(...certified.map((c) => c.at)) - t0,
    certificateCpu: median(certified.map((c) => c.cpuMs)),
    cpuToEnd: median(ended.map((e) => e.cpuMs)),
    cpuToEndSum: ended.reduce((s, e) => s + e.cpuMs, 0),
    views: new Set(decided.map((d) => d.view)),
  }
}

/** The null exchange (pbft-member.ts): PBFT's message steps alone, on the same nodes. */
async function exchange(members: Member[], job: number) {
  const t0 = now()
  for (const m of members) m.send({ type: 'exchange', job })
  const done = await Promise.all(members.map((m) => m.next('exchanged')))
  // Let the last commits land, so they do not fall into the next measurement.
  await new Promise((r) => setTimeout(r, 50))
  return {
    ms: Math.max(...done.map((d) => d.at)) - t0,
    cpu: median(done.map((d) => d.cpuMs)),
    sent: done.reduce((s, d) => s + d.sent, 0),
  }
}

const modeList =
  process.env.BENCH_MODES === 'all'
    ? 'on-request,at-decision,on-arrival'
    : (process.env.BENCH_MODES ??
      (process.env.BENCH_CHECK === 'both' ? 'on-request,on-arrival' : 'on-request'))
const checks = modeList.split(',') as Mode[]
for (const mode of checks) {
  if (!(mode in MODES)) throw new Error(`BENCH_MODES: unknown mode ${mode} (${Object.keys(MODES)})`)
}
const cores = availableParallelism()
const sizes = process.argv.slice(2).map(Number)
const rows: string[] = []
let job = 0
for (const n of sizes.length === 0 ? [4, 7, 31] : sizes) {
  const ROUNDS = roundsFor(n)
  const members = Array.from({ length: n }, (_, i) => spawnMember(i, n))
  const ups = await Promise.all(members.map((m) => m.next('up')))
  const peers = ups.map((u) => ({ peerId: u.peerId, addrs: u.addrs }))
  const meshStarted = now()
  for (const m of members) m.send({ type: 'mesh', peers, parallel: MESH_PARALLEL })
  await Promise.all(members.map((m) => m.next('meshed')))
  console.error(`n=${n}: ${n} processes, mesh up in ${(now() - meshStarted).toFixed(0)} ms`)
  const first = members[0] as Member
  const roundTrip = async (samples: number, fresh: boolean) => {
    first.send({ type: 'rtt', peer: peers[1]?.peerId as string, samples, fresh })
    return first.next('rtt')
  }
  const freshRtt = (await roundTrip(30, true)).fresh
  // Warm-up: each member's table for every other member's key is built after 4 checks.
  for (const check of checks) {
    for (let w = 1; w <= WARM_UPS; w++) await decide(members, -job - w, check)
    job += WARM_UPS
  }
  for (let w = 1; w <= WARM_UPS; w++) await exchange(members, -job - w)
  job += WARM_UPS
  const nulls: Awaited<ReturnType<typeof exchange>>[] = []
  // The modes take turns, each decision after a round trip sample: the load moves, and both
  // modes and the baseline see the same load.
  const load = loadavg()[0] as number
  const rtts: number[] = []
  const runs = new Map(checks.map((c) => [c, [] as Awaited<ReturnType<typeof decide>>[]]))
  const loads: number[] = [load]
  for (let r = 0; r < ROUNDS; r++) {
    nulls.push(await exchange(members, job++))
    for (const check of checks) {
      rtts.push((await roundTrip(10, false)).kept)
      const last = await decide(members, job++, check)
      runs.get(check)?.push(last)
      loads.push(loadavg()[0] as number)
      console.error(
        `n=${n} ${check}: decision ${r + 1}/${ROUNDS} in ${last.ms.toFixed(1)} ms (view ${[...last.views].join(',')}, ` +
          `CPU ${last.cpuToDecision.toFixed(1)} ms per member to the verdict, ${last.cpuToEnd.toFixed(1)} go→end, ` +
          `RTT ${rtts.at(-1)?.toFixed(2)} ms)`,
      )
    }
  }
  const rtt = median(rtts)
  const goal = 3 * rtt + 5
  const nullMs = median(nulls.map((x) => x.ms))
  const nullCpu = median(nulls.map((x) => x.cpu))
  console.log(
    `n=${n} null exchange (PBFT's four message steps of ${VOTE_BYTES_NOTE} on the same nodes and streams; no signatures, encoding or state): ` +
      `${nullMs.toFixed(1)} ms (median of ${nulls.length}), ×${(nullMs / goal).toFixed(2)} the goal; ` +
      `CPU ${nullCpu.toFixed(1)} ms per member; ${median(nulls.map((x) => x.sent))} messages`,
  )
  for (const check of checks) {
    const mine = runs.get(check) ?? []
    const of = (f: (x: (typeof mine)[number]) => number) => median(mine.map(f))
    const latency = of((x) => x.ms)
    const certificate = of((x) => x.certificateMs)
    const cpuToDecision = of((x) => x.cpuToDecision)
    const cpuToDecisionMax = of((x) => x.cpuToDecisionMax)
    const certificateCpu = of((x) => x.certificateCpu)
    const cpuToEnd = of((x) => x.cpuToEnd)
    const sharedFloor = of((x) => x.cpuToEndSum) / cores + 3 * rtt
    const ownCoreFloor = cpuToDecisionMax + 3 * rtt
    const messages = of((x) => x.sent)
    const overNull = latency / nullMs
    const mineLoads = `${Math.min(...loads).toFixed(0)}–${Math.max(...loads).toFixed(0)}`
    rows.push(
      `| ${n} | ${check} | ${latency.toFixed(1)} ms (${ROUNDS}) | ${certificate.toFixed(1)} ms | ${rtt.toFixed(2)} ms | ` +
        `×${(latency / goal).toFixed(2)} | ${nullMs.toFixed(1)} ms (×${(nullMs / goal).toFixed(2)}) | ×${overNull.toFixed(1)} | ${messages} | ${cpuToDecision.toFixed(1)} / ${cpuToDecisionMax.toFixed(1)} / ` +
        `${cpuToEnd.toFixed(1)} ms | ${certificateCpu.toFixed(1)} ms | ` +
        `${ownCoreFloor.toFixed(1)} ms (×${(ownCoreFloor / goal).toFixed(2)}) | ${sharedFloor.toFixed(0)} ms | ${mineLoads} |`,
    )
    console.log(
      `n=${n} ${check}: verdict ${latency.toFixed(1)} ms, submitter's certificate ${certificate.toFixed(1)} ms (medians of ${ROUNDS}); ` +
        `round trip ${rtt.toFixed(2)} ms (kept stream, median of ${rtts.length} samples of 10; ${freshRtt.toFixed(2)} ms on a fresh stream); ` +
        `goal 3 RTT + 5 ms = ${goal.toFixed(1)} ms, verdict / goal ×${(latency / goal).toFixed(2)}, verdict / null exchange ×${overNull.toFixed(1)}; ${messages} messages\n` +
        `  CPU per member per decision: ${cpuToDecision.toFixed(1)} ms to its verdict (median member), ${cpuToDecisionMax.toFixed(1)} ms (slowest member), ` +
        `${cpuToEnd.toFixed(1)} ms go→end (median member); the submitter ${certificateCpu.toFixed(1)} ms to its certificate\n` +
        `  floor with a core per member: ${ownCoreFloor.toFixed(1)} ms (slowest member's CPU to its verdict + 3 RTT, ×${(ownCoreFloor / goal).toFixed(2)} the goal); ` +
        `floor with ${n} processes on ${cores} cores: ${sharedFloor.toFixed(0)} ms (Σ CPU go→end / ${cores} + 3 RTT); load ${mineLoads}`,
    )
  }
  for (const m of members) m.send({ type: 'exit' })
  await Promise.all(members.map((m) => new Promise((r) => m.child.once('exit', r))))
}
console.log(
  `\n| n | mode | verdict (median of) | certificate (submitter) | RTT (kept stream) | verdict / (3 RTT + 5 ms) | null exchange (/ goal) | verdict / null | messages | CPU / member to verdict: median / slowest / go→end | CPU, submitter to certificate | floor, a core per member (/ goal) | floor, ${cores} cores shared | load |`,
)
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for (const row of rows) console.log(row)
