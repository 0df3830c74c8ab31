/**
 * PBFT verdict latency on loopback, one OS process per member, against a raw libp2p round trip
 * between two of the same processes measured in the same run (issue #16 goal: ≤ 3 round trips
 * + 5 ms at n = 7), messages sent per verdict, and the CPU a member spends per decision.
 *
 *   node bench/pbft.ts            # n = 4, 7 and 31
 *   node bench/pbft.ts 4 7        # the committee sizes to measure
 *   BENCH_CHECK=both node bench/pbft.ts 7   # signatures checked before use (ADR 0047, the
 *                                           # default) and on arrival (the baseline), same mesh
 *   BENCH_PROFILE=dir                       # member 1 writes a CPU profile of the timed decisions
 *
 * CPU floor: the n processes share the box's cores, so a decision cannot take less than
 * (CPU per member per decision × n) / cores + 3 RTT; with a core per member the floor is a
 * member's CPU up to its decision + 3 RTT.
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
import type { PbftSignatureCheck } from '../src/index.ts'
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

async function decide(members: Member[], job: number, check: PbftSignatureCheck) {
  for (const m of members) m.send({ type: 'job', job, viewTimeout: VIEW_TIMEOUT, check })
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
  // Let the last commits land before the sessions close (they count as sent).
  await new Promise((r) => setTimeout(r, 50))
  for (const m of members) m.send({ type: 'end', job })
  const ended = await Promise.all(members.map((m) => m.next('ended')))
  return {
    ms,
    sent: ended.reduce((s, e) => s + e.sent, 0),
    cpuToDecision: median(decided.map((d) => d.cpuMs)),
    cpuToEnd: median(ended.map((e) => e.cpuMs)),
    views: new Set(decided.map((d) => d.view)),
  }
}

const checks: PbftSignatureCheck[] =
  process.env.BENCH_CHECK === 'both'
    ? ['before-use', 'on-arrival']
    : [(process.env.BENCH_CHECK as PbftSignatureCheck | undefined) ?? 'before-use']
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
  // The modes take turns, each decision after a round trip sample: the load moves, and both
  // modes and the baseline see the same load.
  const load = loadavg()[0] as number
  const rtts: number[] = []
  const runs = new Map(checks.map((c) => [c, [] as Awaited<ReturnType<typeof decide>>[]]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const check of checks) {
      rtts.push((await roundTrip(10, false)).kept)
      const last = await decide(members, job++, check)
      runs.get(check)?.push(last)
      console.error(
        `n=${n} ${check}: decision ${r + 1}/${ROUNDS} in ${last.ms.toFixed(1)} ms (view ${[...last.views].join(',')}, ` +
          `CPU ${last.cpuToEnd.toFixed(1)} ms per member, RTT ${rtts.at(-1)?.toFixed(2)} ms)`,
      )
    }
  }
  const rtt = median(rtts)
  const goal = 3 * rtt + 5
  for (const check of checks) {
    const mine = runs.get(check) ?? []
    const latency = median(mine.map((x) => x.ms))
    const cpuToDecision = median(mine.map((x) => x.cpuToDecision))
    const cpuToEnd = median(mine.map((x) => x.cpuToEnd))
    const sharedFloor = (cpuToEnd * n) / cores + 3 * rtt
    const ownCoreFloor = cpuToDecision + 3 * rtt
    const messages = median(mine.map((x) => x.sent))
    rows.push(
      `| ${n} | ${check} | ${latency.toFixed(1)} ms (${ROUNDS}) | ${rtt.toFixed(2)} ms | ` +
        `×${(latency / goal).toFixed(2)} | ${messages} | ${cpuToDecision.toFixed(1)} / ${cpuToEnd.toFixed(1)} ms | ` +
        `${sharedFloor.toFixed(0)} ms | ${ownCoreFloor.toFixed(1)} ms (×${(ownCoreFloor / goal).toFixed(2)}) | ` +
        `${load.toFixed(0)}-${(loadavg()[0] as number).toFixed(0)} |`,
    )
    console.log(
      `n=${n} ${check}: verdict ${latency.toFixed(1)} ms (median of ${ROUNDS}); round trip ${rtt.toFixed(2)} ms ` +
        `(kept stream, median of ${rtts.length} samples of 10; ${freshRtt.toFixed(2)} ms on a fresh stream); ` +
        `goal 3 RTT + 5 ms = ${goal.toFixed(1)} ms, verdict / goal ×${(latency / goal).toFixed(2)}; ${messages} messages; ` +
        `CPU per member ${cpuToDecision.toFixed(1)} ms to its decision, ${cpuToEnd.toFixed(1)} ms go→end; ` +
        `floor with ${n} processes on ${cores} cores ${sharedFloor.toFixed(0)} ms, with a core per member ${ownCoreFloor.toFixed(1)} ms`,
    )
  }
  for (const m of members) m.send({ type: 'exit' })
  await Promise.all(members.map((m) => new Promise((r) => m.child.once('exit', r))))
}
console.log(
  `\n| n | signatures checked | verdict (median of) | RTT (kept stream) | verdict / (3 RTT + 5 ms) | messages | CPU / member: to decision / go→end | floor, ${cores} cores shared | floor, a core per member (/ goal) | load |`,
)
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for (const row of rows) console.log(row)
