/**
 * The verifier node's PBFT rounds (`pbftRounds`, src/node/verifier/pbft-round.ts) before and
 * after ADR 0053's verifier path, in the same run, taking turns decision by decision on one mesh:
 * - `at-decision` (before): every member builds and checks its certificate, and its `decide`
 *   waits for it;
 * - `on-request` (after): every member's `decide` resolves at the verdict (2f+1 counted commits);
 *   only the submitter (the view-0 leader) calls `certify`.
 * One OS process per member (this file, forked with `member`; a signature check answered in one
 * process is cached there, so members must not share one), each a Digicap libp2p node on
 * loopback (TCP + noise + yamux).
 *
 *   node bench/verifier-rounds.ts          # n = 4, 7 and 31 (issue #16's sizes)
 *   node bench/verifier-rounds.ts 4        # the committee sizes
 *   BENCH_ROUNDS=5                          # timed decisions per mode (default 10)
 *
 * Per mode, medians of the timed decisions: the verdict (the last member's `decide`, from the
 * parent's "go"; one wall clock), the submitter's certificate, a member's CPU from "go" to the end
 * of the job (the median member's, and Σ over the committee), the messages per verdict (frames
 * the members' PBFT sessions sent for the job, Σ over the committee), and the ratio after /
 * before. Issue #16 measures the verdict against a raw libp2p round trip in the same run: member
 * 0 echoes 200 bytes off member 1 on one kept stream (the PBFT endpoint keeps one per peer too),
 * 10 trips before each timed decision; the median is printed with the verdict in round trips and
 * the issue's bar (3 round trips + 5 ms).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { type Address, privateKeySigner } from '@digicap/capsule-core'
import {
  type PbftCertificateMode,
  type PbftCommittee,
  pbftCommittee,
  pbftDomain,
} from '@digicap/committee'
import { createDigicapNode } from '@digicap/p2p'
import { readMessages, sendMessage } from '@digicap/protocol'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { type PbftRound, pbftRounds } from '../src/node/index.ts'

type ToMember =
  | { type: 'mesh'; peers: { address: Address; peerId: string; addrs: string[] }[] }
  | { type: 'job'; job: number; certificate: PbftCertificateMode }
  | { type: 'go'; job: number }
  | { type: 'end'; job: number }
  | { type: 'rtt'; peer: string; samples: number }
  | { type: 'exit' }
type FromMember =
  | { type: 'up'; address: Address; peerId: string; addrs: string[] }
  | { type: 'meshed' }
  | { type: 'ready' }
  | { type: 'decided'; at: number; certificateAt?: number }
  | { type: 'ended'; cpuMs: number; sent: number }
  | { type: 'rtt'; ms: number }

const MODES: readonly PbftCertificateMode[] = ['at-decision', 'on-request']
/** The raw round trip's protocol: frames echoed as they come. */
const ECHO = '/digicap/bench-echo/1.0.0'
/** Round trips sampled before each timed decision. */
const RTT_SAMPLES = 10
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10)
const WARM_UPS = 3
/** Long enough that a slow decision is not cut by a view change (that would measure it). */
const VIEW_TIMEOUT = 600_000
const domain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
const jobIdOf = (job: number) => keccak_256(new TextEncoder().encode(`verifier-rounds ${job}`))
const value = { verdict: 7, evidenceHash: keccak_256(new TextEncoder().encode('evidence')) }
const now = () => performance.timeOrigin + performance.now()
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const cpuMs = (since: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(since)
  return (u.user + u.system) / 1000
}

/** Median round trip of a 200-byte frame echoed by `peer` on one kept stream (after 3 warm-ups). */
async function roundTrip(
  node: Awaited<ReturnType<typeof createDigicapNode>>,
  peer: string,
  samples: number,
): Promise<number> {
  const stream = await node.libp2p.dialProtocol(peerIdFromString(peer), ECHO)
  const replies = readMessages(stream)[Symbol.asyncIterator]()
  const body = new Uint8Array(200)
  const times: number[] = []
  for (let i = 0; i < samples + 3; i++) {
    const t0 = performance.now()
    await sendMessage(stream, body)
    await replies.next()
    if (i >= 3) times.push(performance.now() - t0)
  }
  await stream.close()
  return median(times)
}

/** One member: a node, its rounds, one job at a time as the parent says. */
async function member(index: number): Promise<void> {
  const tell = (m: FromMember) => process.send?.(m)
  process.on('disconnect', () => process.exit(0))
  // A member that fails ends the run (the parent sees it exit) instead of leaving it waiting.
  process.on('unhandledRejection', (err) => {
    console.error(`member ${index}:`, err)
    process.exit(1)
  })
  const signer = privateKeySigner(keccak_256(new TextEncoder().encode(`member ${index}`)))
  const node = await createDigicapNode()
  await node.libp2p.handle(ECHO, async (stream: Stream) => {
    for await (const body of readMessages(stream)) await sendMessage(stream, body)
    await stream.close().catch(() => {})
  })
  const rounds = pbftRounds(node.libp2p)
  let committee: PbftCommittee | undefined
  let round: PbftRound | undefined
  let certificate: PbftCertificateMode = 'on-request'
  let cpu: NodeJS.CpuUsage | undefined
  process.on('message', async (m: ToMember) => {
    if (m.type === 'mesh') {
      committee = pbftCommittee(m.peers.map(({ address, peerId }) => ({ address, peerId })))
      for (const peer of m.peers.slice(0, index)) {
        // A loaded box loses a loopback dial now and then: a few tries each.
        for (let attempt = 1; ; attempt++) {
          try {
            await node.libp2p.dial(peer.addrs.map((a) => multiaddr(a)))
            break
          } catch (err) {
            if (attempt >= 5) throw err
            await new Promise((r) => setTimeout(r, 200 * attempt))
          }
        }
      }
      tell({ type: 'meshed' })
    } else if (m.type === 'job') {
      certificate = m.certificate
      round = await rounds.open({
        committee: committee as PbftCommittee,
        domain,
        roundIds: [jobIdOf(m.job)],
        signer,
        viewTimeoutMs: VIEW_TIMEOUT,
        certificate,
      })
      tell({ type: 'ready' })
    } else if (m.type === 'go') {
      cpu = process.cpuUsage()
      const r = round as PbftRound
      await r.decide(jobIdOf(m.job), value, VIEW_TIMEOUT)
      const at = now()
      // The submitter: the view-0 leader (at-decision built it already, every member did).
      if (index === 0 && certificate === 'on-request') await r.certify(jobIdOf(m.job), VIEW_TIMEOUT)
      tell({ type: 'decided', at, ...(index === 0 ? { certificateAt: now() } : {}) })
    } else if (m.type === 'end') {
      // Votes still arriving after this member's decision cost too: a short wait before the count.
      await new Promise((r) => setTimeout(r, 50))
      const spent = cpuMs(cpu as NodeJS.CpuUsage)
      // Frames this member's session sent for the job (its votes, to each other member).
      const sent = round?.transport.stats.sent ?? 0
      await round?.stop()
      tell({ type: 'ended', cpuMs: spent, sent })
    } else if (m.type === 'rtt') {
      tell({ type: 'rtt', ms: await roundTrip(node, m.peer, m.samples) })
    } else if (m.type === 'exit') {
      await rounds.stop()
      await node.stop()
      process.exit(0)
    }
  })
  tell({
    type: 'up',
    address: signer.address,
    peerId: node.libp2p.peerId.toString(),
    addrs: node.libp2p.getMultiaddrs().map((a) => a.toString()),
  })
}

interface Member {
  child: ChildProcess
  next<T extends FromMember['type']>(type: T): Promise<Extract<FromMember, { type: T }>>
  send(m: ToMember): void
}

function spawn(index: number): Member {
  const child = fork(fileURLToPath(import.meta.url), ['member', String(index)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: ['--disable-warning=ExperimentalWarning'],
  })
  child.once('exit', (code) => {
    if (code !== 0 && !exiting) {
      console.error(`member ${index} exited with ${code}`)
      process.exit(1)
    }
  })
  const inbox: FromMember[] = []
  const waiting: { type: string; resolve: (m: FromMember) => void }[] = []
  child.on('message', (m: FromMember) => {
    const at = waiting.findIndex((w) => w.type === m.type)
    if (at >= 0) waiting.splice(at, 1)[0]?.resolve(m)
    else inbox.push(m)
  })
  return {
    child,
    next: (type) => {
      const at = inbox.findIndex((m) => m.type === type)
      if (at >= 0) return Promise.resolve(inbox.splice(at, 1)[0] as never)
      return new Promise((resolve) => waiting.push({ type, resolve: resolve as never }))
    },
    send: (m) => child.send(m),
  }
}

/** Set once the members are told to exit. */
let exiting = false

async function decide(members: Member[], job: number, certificate: PbftCertificateMode) {
  for (const m of members) m.send({ type: 'job', job, certificate })
  await Promise.all(members.map((m) => m.next('ready')))
  const t0 = now()
  for (const m of members) m.send({ type: 'go', job })
  const decided = await Promise.all(members.map((m) => m.next('decided')))
  for (const m of members) m.send({ type: 'end', job })
  const ended = await Promise.all(members.map((m) => m.next('ended')))
  return {
    verdictMs: Math.max(...decided.map((d) => d.at)) - t0,
    certificateMs: (decided[0]?.certificateAt as number) - t0,
    cpuMs: median(ended.map((e) => e.cpuMs)),
    cpuSumMs: ended.reduce((s, e) => s + e.cpuMs, 0),
    messages: ended.reduce((s, e) => s + e.sent, 0),
  }
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number)
  let job = 0
  const table: string[] = []
  for (const n of sizes.length > 0 ? sizes : [4, 7, 31]) {
    const members = Array.from({ length: n }, (_, i) => spawn(i))
    const ups = await Promise.all(members.map((m) => m.next('up')))
    // One member dials its predecessors at a time: 31 processes dialling each other at once
    // (465 handshakes) lost dials to resets on a loaded box and the bench died meshing.
    for (const m of members) {
      m.send({ type: 'mesh', peers: ups })
      await m.next('meshed')
    }
    for (const mode of MODES) for (let w = 0; w < WARM_UPS; w++) await decide(members, job++, mode)
    const runs = new Map(MODES.map((m) => [m, [] as Awaited<ReturnType<typeof decide>>[]]))
    const loads = [loadavg()[0] as number]
    const rtts: number[] = []
    const [first] = members as [Member]
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of MODES) {
        // A round trip sample before each decision: the load moves, the ratio uses the same run's.
        first.send({ type: 'rtt', peer: ups[1]?.peerId as string, samples: RTT_SAMPLES })
        rtts.push((await first.next('rtt')).ms)
        runs.get(mode)?.push(await decide(members, job++, mode))
        loads.push(loadavg()[0] as number)
      }
    }
    const rtt = median(rtts)
    const of = (mode: PbftCertificateMode, f: (x: Awaited<ReturnType<typeof decide>>) => number) =>
      median((runs.get(mode) ?? []).map(f))
    const load = `${Math.min(...loads).toFixed(0)}–${Math.max(...loads).toFixed(0)}`
    const cells = (f: (x: Awaited<ReturnType<typeof decide>>) => number) => {
      const [before, after] = MODES.map((mode) => of(mode, f)) as [number, number]
      return `${before.toFixed(1)} → ${after.toFixed(1)} ms (×${(after / before).toFixed(2)})`
    }
    const verdict = of('on-request', (x) => x.verdictMs)
    const messages = MODES.map((mode) => of(mode, (x) => x.messages))
    const row = [
      cells((x) => x.verdictMs),
      cells((x) => x.certificateMs),
      cells((x) => x.cpuMs),
      cells((x) => x.cpuSumMs),
      `${rtt.toFixed(2)} ms`,
      `${(verdict / rtt).toFixed(1)} RTT (bar ${(3 * rtt + 5).toFixed(1)} ms)`,
      `${messages[0]} → ${messages[1]} (${(Number(messages[1]) / n).toFixed(1)} / member)`,
    ]
    console.log(
      `n=${n}, medians of ${ROUNDS} decisions per mode, before (at-decision) → after (on-request), ratio after/before:\n` +
        `  verdict (every member decided) ${row[0]}\n  submitter's certificate ${row[1]}\n` +
        `  CPU per member go→end (median member) ${row[2]}\n  CPU of the committee go→end ${row[3]}\n` +
        `  raw libp2p round trip (200 B, kept stream; median of ${rtts.length} samples, each the median of ${RTT_SAMPLES} trips) ${row[4]}; after's verdict = ${row[5]}\n` +
        `  messages per verdict (frames sent, committee) ${row[6]}; load ${load}`,
    )
    table.push(`| ${n} | ${row.join(' | ')} | ${load} |`)
    exiting = true
    for (const m of members) m.send({ type: 'exit' })
    await Promise.all(members.map((m) => new Promise((r) => m.child.once('exit', r))))
    exiting = false
  }
  console.log(
    '\n| n | verdict | submitter’s certificate | CPU / member go→end | CPU, committee go→end | raw RTT | after’s verdict | messages / verdict | load |',
  )
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const row of table) console.log(row)
}

if (process.argv[2] === 'member') await member(Number(process.argv[3]))
else await main()
