/**
 * PBFT's own CPU per member and decision, with every member in this one process (a libp2p node
 * each, TCP + noise + yamux on loopback, one PBFT endpoint each), against one libp2p message of
 * a vote's size measured here too. `pbft.ts` runs a process per member, so on a box with fewer
 * cores than members its CPU figures include the cost of sharing cores (context switches, cold
 * caches); here the members take turns on one thread, and the sum of their CPU is the protocol's.
 * Signatures are checked before use and the certificate is not built (the verifier path's
 * defaults, ADR 0053).
 *
 *   node bench/pbft-one-process.ts [4 7 …] [--rounds 40]
 *
 * Prints, per n: the median CPU per decision (start → every member's verdict) and per member,
 * and that as a number of one-way messages; and the wall time, which is all members' CPU in
 * series here. Asserts nothing.
 */
import { loadavg } from 'node:os'
import { readMessages, sendMessage } from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { createPbftMux, PbftReplica } from '../src/index.ts'
import { benchSigners, createMesh, domain, meshCommittee, PASS } from '../test/pbft-fixtures.ts'

const args = process.argv.slice(2)
const r = args.indexOf('--rounds')
const rounds = r >= 0 ? Number(args[r + 1]) : 40
const sizes = args.filter((a, i) => /^\d+$/.test(a) && (r < 0 || i !== r + 1)).map(Number)
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const cpuMs = (since: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(since)
  return (u.user + u.system) / 1000
}

/** CPU of one 217-byte length-prefixed message, sent and read, between two of the nodes. */
async function oneMessage(nodes: Awaited<ReturnType<typeof createMesh>>): Promise<number> {
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]]
  let arrived: () => void = () => {}
  await b.handle('/digicap/bench/one-way/1', async (stream) => {
    for await (const _ of readMessages(stream, { maxSize: 4096 })) {
      arrived()
    }
  })
  const stream = await a.dialProtocol(b.peerId, '/digicap/bench/one-way/1')
  const body = new Uint8Array(217).fill(7)
  const samples: number[] = []
  for (let round = 0; round < 6; round++) {
    const count = 400
    const since = process.cpuUsage()
    for (let i = 0; i < count; i++) {
      const here = new Promise<void>((resolve) => {
        arrived = resolve
      })
      await sendMessage(stream, body, { maxSize: 4096 })
      await here // one at a time, as votes go: each one read before the next is sent
    }
    if (round > 0) samples.push(cpuMs(since) / count)
  }
  await stream.close()
  await b.unhandle('/digicap/bench/one-way/1')
  return median(samples)
}

for (const n of sizes.length > 0 ? sizes : [4, 7]) {
  const nodes = await createMesh(n)
  const keys = benchSigners(n)
  const committee = meshCommittee(keys, nodes)
  const muxes = await Promise.all(nodes.map((node) => createPbftMux({ node, maxSessions: 4 })))
  const decide = async (job: number) => {
    const jobId = keccak_256(new TextEncoder().encode(`one-process-${n}-${job}`))
    const replicas: PbftReplica[] = []
    const sessions = muxes.map((mux, i) =>
      mux.open({
        committee,
        jobIds: [jobId],
        onMessage: (from, message) => replicas[i]?.receive(from, message),
      }),
    )
    for (let i = 0; i < n; i++) {
      replicas.push(
        new PbftReplica({
          domain,
          committee,
          jobId,
          signer: keys[i] as (typeof keys)[0],
          value: PASS,
          viewTimeout: 5_000,
          signatureCheck: 'before-use',
          certificate: 'on-request',
          send: (to, message) => (sessions[i] as (typeof sessions)[0]).send(to, message),
        }),
      )
    }
    const since = process.cpuUsage()
    const t0 = performance.now()
    await Promise.all(replicas.map((replica) => replica.start()))
    await Promise.all(replicas.map((replica) => replica.verdict))
    const result = { ms: performance.now() - t0, cpuMs: cpuMs(since) }
    for (const replica of replicas) replica.stop()
    await Promise.all(sessions.map((session) => session.stop()))
    return result
  }
  for (let warm = 0; warm < 5; warm++) await decide(-1 - warm)
  const runs = []
  for (let job = 0; job < rounds; job++) runs.push(await decide(job))
  const message = await oneMessage(nodes)
  const cpu = median(runs.map((x) => x.cpuMs))
  console.log(
    `n=${n}: CPU ${cpu.toFixed(1)} ms per decision, ${(cpu / n).toFixed(2)} ms per member ` +
      `(${(cpu / n / message).toFixed(0)}× one vote-sized message, ${(message * 1000).toFixed(0)} µs sent and read); ` +
      `wall ${median(runs.map((x) => x.ms)).toFixed(1)} ms (the members' CPU in series); ` +
      `median of ${rounds}, load ${loadavg()[0]?.toFixed(1)}`,
  )
  await Promise.all(muxes.map((mux) => mux.stop()))
  await Promise.all(nodes.map((node) => node.stop()))
}
