/**
 * One committee member of `bench/pbft.ts`, in its own OS process: a libp2p node on loopback, one
 * PBFT endpoint (`createPbftMux`) for every decision of the run, and a `PbftReplica` per job.
 * Driven by the parent over the IPC channel (messages below); never run alone.
 */
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import type { DigicapSigner } from '@digicap/capsule-core'
import { readMessages, sendMessage } from '@digicap/protocol'
import type { Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { keccak_256 } from '@noble/hashes/sha3.js'
import {
  createPbftMux,
  type PbftCertificateMode,
  type PbftCommittee,
  type PbftMember,
  PbftReplica,
  type PbftSignatureCheck,
  type PbftTransport,
  pbftCommittee,
} from '../src/index.ts'
import { benchSigners, createNode, domain, PASS } from '../test/pbft-fixtures.ts'

export type ToMember =
  | { type: 'mesh'; peers: { peerId: string; addrs: string[] }[]; parallel: number }
  | { type: 'rtt'; peer: string; samples: number; fresh: boolean }
  | {
      type: 'job'
      job: number
      viewTimeout: number
      check: PbftSignatureCheck
      certificate: PbftCertificateMode
    }
  | { type: 'go'; job: number }
  | { type: 'end'; job: number }
  | { type: 'status'; job: number }
  | { type: 'exchange'; job: number }
  | { type: 'exit' }

export type FromMember =
  | { type: 'up'; peerId: string; addrs: string[] }
  | { type: 'meshed'; dialed: number; ms: number }
  | { type: 'rtt'; kept: number; fresh: number }
  | { type: 'ready'; job: number }
  | {
      type: 'decided'
      job: number
      /** When this member's verdict resolved, and its CPU from "go" to then. */
      at: number
      cpuMs: number
      view: string
      /** The member that built a certificate: when, and its CPU from "go" to then. */
      certificate?: { at: number; cpuMs: number }
    }
  | { type: 'ended'; job: number; sent: number; cpuMs: number }
  | { type: 'status'; job: number; report: string }
  /** The null exchange's decision at this member: when, its CPU from "go", messages it sent. */
  | { type: 'exchanged'; job: number; at: number; cpuMs: number; sent: number }
  | { type: 'failed'; error: string }

const ECHO = '/digicap/bench-echo/1.0.0'
const index = Number(process.argv[2])
const size = Number(process.argv[3])
const tell = (m: FromMember) => process.send?.(m)
/**
 * BENCH_PROFILE=dir: member 1 writes a V8 CPU profile of the timed decisions only (no start-up,
 * mesh or warm-up) to dir/member-1-n<size>.cpuprofile: where a member's time goes.
 */
const profileDir = index === 1 ? process.env.BENCH_PROFILE : undefined
let profiler: Session | undefined
const now = () => performance.timeOrigin + performance.now()
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

const keys = benchSigners(size)
const key = keys[index] as DigicapSigner
// n = 31 members bring up 465 connections at once on a shared 2-core box: handshakes need more
// than libp2p's default few seconds there.
const node: Libp2p = await createNode({
  dialTimeout: 60_000,
  addressDialTimeout: 60_000,
  inboundUpgradeTimeout: 60_000,
})
// The parent went away (it failed, or was stopped): so does this member.
process.on('disconnect', () => process.exit(0))
const mux = await createPbftMux({ node, maxSessions: 4 })
await node.handle(ECHO, async (stream: Stream) => {
  for await (const body of readMessages(stream)) await sendMessage(stream, body)
  await stream.close().catch(() => {})
})

/**
 * The null exchange (the bench's floor for any protocol with PBFT's message pattern here): the
 * same four message steps as a decision (observations all to all; the leader's pre-prepare once
 * it holds 2f + 1 observations; prepares all to all; commits all to all once prepared; decided
 * on 2f + 1 commits), votes of a vote's size, on one kept stream per pair of these same nodes,
 * and nothing else: no signatures, no EIP-712, no CBOR, no PBFT state, no resends.
 */
const EXCHANGE = '/digicap/bench-exchange/1.0.0'
/** About a signed vote's encoding (phase, view, job id, verdict, evidence hash, signature). */
const VOTE_BYTES = 200
const STEP = { observation: 0, prePrepare: 1, prepare: 2, commit: 3 } as const
const quorum = 2 * Math.floor((size - 1) / 3) + 1
const exchangeStreams = new Map<number, Stream>()
interface Exchange {
  started?: NodeJS.CpuUsage
  observations: number
  prePrepared: boolean
  prepares: number
  commits: number
  sentPrepare: boolean
  sentCommit: boolean
  decided: boolean
  sent: number
}
const exchanges = new Map<number, Exchange>()
const exchangesDone = new Set<number>()

function exchangeOf(job: number): Exchange | undefined {
  if (exchangesDone.has(job)) return undefined
  let x = exchanges.get(job)
  if (x === undefined) {
    x = {
      observations: 0,
      prePrepared: false,
      prepares: 0,
      commits: 0,
      sentPrepare: false,
      sentCommit: false,
      decided: false,
      sent: 0,
    }
    exchanges.set(job, x)
  }
  return x
}

function broadcast(x: Exchange, job: number, step: number, bytes: number): void {
  const body = new Uint8Array(bytes)
  body[0] = step
  new DataView(body.buffer).setInt32(1, job)
  for (const stream of exchangeStreams.values()) {
    x.sent++
    sendMessage(stream, body).catch((err: unknown) => tell({ type: 'failed', error: String(err) }))
  }
}

/** What a member sends next, as PBFT's normal case orders it (index 0 leads). */
function advance(x: Exchange, job: number): void {
  if (x.started === undefined || x.decided) return
  if (index === 0 && !x.prePrepared && x.observations >= quorum) {
    x.prePrepared = true // the leader's pre-prepare stands for its prepare (SPEC-PBFT)
    broadcast(x, job, STEP.prePrepare, VOTE_BYTES * (quorum + 1)) // observations as its proof
  }
  if (index !== 0 && x.prePrepared && !x.sentPrepare) {
    x.sentPrepare = true
    x.prepares++
    broadcast(x, job, STEP.prepare, VOTE_BYTES)
  }
  if (x.prePrepared && x.prepares >= quorum - 1 && !x.sentCommit) {
    x.sentCommit = true
    x.commits++
    broadcast(x, job, STEP.commit, VOTE_BYTES)
  }
  if (x.commits >= quorum) {
    x.decided = true
    const used = process.cpuUsage(x.started)
    const cpuMs = (used.user + used.system) / 1000
    tell({ type: 'exchanged', job, at: now(), cpuMs, sent: x.sent })
    exchanges.delete(job)
    exchangesDone.add(job)
  }
}

await node.handle(EXCHANGE, async (stream: Stream) => {
  for await (const body of readMessages(stream)) {
    const job = new DataView(body.buffer, body.byteOffset, body.byteLength).getInt32(1)
    const x = exchangeOf(job)
    if (x === undefined) continue
    if (body[0] === STEP.observation) x.observations++
    else if (body[0] === STEP.prePrepare) x.prePrepared = true
    else if (body[0] === STEP.prepare) x.prepares++
    else if (body[0] === STEP.commit) x.commits++
    advance(x, job)
  }
})

let peers: { peerId: string; addrs: string[] }[] = []
let members: PbftCommittee | undefined
const jobs = new Map<
  number,
  {
    replica: PbftReplica
    session: PbftTransport
    certificate: PbftCertificateMode
    cpu?: NodeJS.CpuUsage
    /** Votes handed to the replica, by phase (a stalled decision's status). */
    got: Record<string, number>
  }
>()

/** Each pair is dialled once: by the member whose index is at most n/2 ahead of it. */
function mine(i: number, j: number, n: number): boolean {
  const ahead = (j - i + n) % n
  return ahead > 0 && (ahead < n / 2 || (ahead === n / 2 && i < j))
}

/** A loaded box loses loopback dials now and then: a few tries each. */
async function dial(peer: { addrs: string[] }): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await node.dial(peer.addrs.map((a) => multiaddr(a)))
      return
    } catch (err) {
      if (attempt >= 5) throw err
    }
  }
}

async function mesh(parallel: number): Promise<number> {
  const targets = peers.filter((_, j) => mine(index, j, size))
  let next = 0
  const worker = async () => {
    for (let t = targets[next++]; t !== undefined; t = targets[next++]) await dial(t)
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  // The others dial this member: wait until every pair is connected. A pair still missing after
  // 20 s (its dial was lost under load) is dialled from this side too.
  const missing = () =>
    peers.filter(
      (p) =>
        p.peerId !== node.peerId.toString() &&
        node.getConnections(peerIdFromString(p.peerId)).length === 0,
    )
  const deadline = Date.now() + 20_000
  while (missing().length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20))
  }
  const late = missing()
  for (const p of late) await dial(p)
  return targets.length + late.length
}

/** Median round trips on a kept stream and, when `withFresh`, on a fresh stream per trip. */
async function rtt(
  peer: string,
  samples: number,
  withFresh: boolean,
): Promise<{ kept: number; fresh: number }> {
  const id = peerIdFromString(peer)
  const body = new Uint8Array(200)
  const stream = await node.dialProtocol(id, ECHO)
  const replies = readMessages(stream)[Symbol.asyncIterator]()
  const kept: number[] = []
  for (let i = 0; i < samples + 5; i++) {
    const t0 = performance.now()
    await sendMessage(stream, body)
    await replies.next()
    if (i >= 5) kept.push(performance.now() - t0)
  }
  await stream.close()
  const fresh: number[] = []
  for (let i = 0; withFresh && i < samples + 5; i++) {
    const t0 = performance.now()
    const s = await node.dialProtocol(id, ECHO)
    await sendMessage(s, body)
    await readMessages(s)[Symbol.asyncIterator]().next()
    await s.close()
    if (i >= 5) fresh.push(performance.now() - t0)
  }
  return { kept: median(kept), fresh: withFresh ? median(fresh) : Number.NaN }
}

/** The committee, built once: key derivation is not part of a decision. */
function committee(): PbftCommittee {
  members ??= pbftCommittee(
    keys.map((k, i) => ({ address: k.address, peerId: (peers[i] as { peerId: string }).peerId })),
  )
  return members
}

async function onMessage(m: ToMember): Promise<void> {
  switch (m.type) {
    case 'mesh': {
      peers = m.peers
      const t0 = performance.now()
      const dialed = await mesh(m.parallel)
      for (const [j, p] of peers.entries()) {
        if (j === index) continue
        exchangeStreams.set(j, await node.dialProtocol(peerIdFromString(p.peerId), EXCHANGE))
      }
      tell({ type: 'meshed', dialed, ms: performance.now() - t0 })
      return
    }
    case 'rtt':
      tell({ type: 'rtt', ...(await rtt(m.peer, m.samples, m.fresh)) })
      return
    case 'job': {
      const jobId = keccak_256(new TextEncoder().encode(`bench-job-${m.job}`))
      let replica: PbftReplica | undefined
      const got: Record<string, number> = {}
      const session = mux.open({
        committee: committee(),
        jobIds: [jobId],
        onMessage: (from: PbftMember, message) => {
          const phase = `${message.vote.phase}/${message.vote.view}`
          got[phase] = (got[phase] ?? 0) + 1
          return replica?.receive(from, message)
        },
      })
      replica = new PbftReplica({
        domain,
        committee: committee(),
        jobId,
        signer: key,
        value: PASS,
        viewTimeout: m.viewTimeout,
        signatureCheck: m.check,
        certificate: m.certificate,
        send: (to, message) => session.send(to, message),
      })
      jobs.set(m.job, { replica, session, got, certificate: m.certificate })
      tell({ type: 'ready', job: m.job })
      return
    }
    case 'go': {
      const job = jobs.get(m.job)
      if (job === undefined) return
      if (profileDir !== undefined && m.job >= 0 && profiler === undefined) {
        profiler = new Session()
        profiler.connect()
        await profiler.post('Profiler.enable')
        await profiler.post('Profiler.setSamplingInterval', {
          interval: Number(process.env.BENCH_PROFILE_US ?? 100),
        })
        await profiler.post('Profiler.start')
      }
      const cpu = process.cpuUsage()
      const cpuMs = () => {
        const used = process.cpuUsage(cpu)
        return (used.user + used.system) / 1000
      }
      job.cpu = cpu
      // The view-0 leader submits the certificate (as the verifier node does): with `on-request`
      // it alone builds one; with `at-decision` every member does.
      const builds = job.certificate === 'at-decision' || index === 0
      const certificate = builds
        ? job.replica.certify().then(() => ({ at: now(), cpuMs: cpuMs() }))
        : undefined
      await job.replica.start()
      const decision = await job.replica.verdict
      const at = now()
      const used = cpuMs()
      tell({
        type: 'decided',
        job: m.job,
        at,
        cpuMs: used,
        view: String(decision.view),
        ...(certificate === undefined ? {} : { certificate: await certificate }),
      })
      return
    }
    case 'end': {
      const job = jobs.get(m.job)
      jobs.delete(m.job)
      job?.replica.stop()
      await job?.session.stop()
      // CPU from "go" to the end: the votes that arrive after the decision cost too.
      const used = process.cpuUsage(job?.cpu)
      tell({
        type: 'ended',
        job: m.job,
        sent: job?.session.stats.sent ?? 0,
        cpuMs: (used.user + used.system) / 1000,
      })
      return
    }
    case 'status': {
      // What a member holds while a decision is late: where the votes stopped.
      const job = jobs.get(m.job)
      const report = {
        view: String(job?.replica.view),
        decided: job?.replica.certificate !== undefined,
        got: job?.got,
        session: job?.session.stats,
        endpoint: mux.stats,
        connections: node.getConnections().length,
      }
      tell({ type: 'status', job: m.job, report: JSON.stringify(report) })
      return
    }
    case 'exchange': {
      const x = exchangeOf(m.job)
      if (x === undefined) return
      x.started = process.cpuUsage()
      x.observations++
      broadcast(x, m.job, STEP.observation, VOTE_BYTES)
      advance(x, m.job)
      return
    }
    case 'exit':
      if (profiler !== undefined && profileDir !== undefined) {
        const { profile } = await profiler.post('Profiler.stop')
        writeFileSync(join(profileDir, `member-1-n${size}.cpuprofile`), JSON.stringify(profile))
      }
      await mux.stop()
      await node.stop()
      process.exit(0)
  }
}

process.on('message', (m: ToMember) => {
  onMessage(m).catch((err: unknown) => tell({ type: 'failed', error: String(err) }))
})
tell({ type: 'up', peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
