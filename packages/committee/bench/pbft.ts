/**
 * PBFT verdict latency on loopback against a raw libp2p round trip measured in the same run
 * (issue #16 goal: ≤ 3 round trips + 5 ms at n = 7), and messages sent per verdict.
 *
 *   node bench/pbft.ts            # n = 4, 7 and 31
 *   node bench/pbft.ts 4 7        # the committee sizes to measure
 *
 * Each size: one fully connected mesh of real libp2p nodes (TCP + noise + yamux), a warm-up
 * decision, then ROUNDS decisions on fresh job ids; the time is start() → every member decided.
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import { readMessage, sendMessage } from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { createPbftNode, pbftCommittee, recoverVoteSigner, signVote } from '../src/index.ts'
import { createMesh, domain, PASS, signers } from '../test/pbft-fixtures.ts'

/** Decisions timed per size (n = 31 costs the one process ~3n² signature recoveries each). */
const roundsFor = (n: number) =>
  process.env.BENCH_ROUNDS !== undefined ? Number(process.env.BENCH_ROUNDS) : n >= 31 ? 3 : 10
const ECHO = '/digicap/bench-echo/1.0.0'

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

async function rawRoundTrip(a: Libp2p, b: Libp2p): Promise<number> {
  await b.handle(ECHO, async (stream) => {
    const body = await readMessage(stream)
    await sendMessage(stream, body)
    await stream.close()
  })
  const times: number[] = []
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now()
    const stream = await a.dialProtocol(b.peerId, ECHO)
    await sendMessage(stream, new Uint8Array(200))
    await readMessage(stream)
    await stream.close()
    if (i >= 5) times.push(performance.now() - t0)
  }
  await b.unhandle(ECHO)
  return median(times)
}

async function decideOnce(nodes: Libp2p[], keys: DigicapSigner[], job: number) {
  const committee = pbftCommittee(
    keys.map((k, i) => ({ address: k.address, peerId: (nodes[i] as Libp2p).peerId.toString() })),
  )
  const jobId = keccak_256(new TextEncoder().encode(`bench-job-${job}`))
  const members = await Promise.all(
    nodes.map((node, i) =>
      createPbftNode({
        node,
        committee,
        domain,
        jobId,
        signer: keys[i] as DigicapSigner,
        value: PASS,
        // Long enough that a slow decision of many members in one process is not cut by a view
        // change (which would measure the view change, not the decision).
        viewTimeout: 600_000,
      }),
    ),
  )
  const t0 = performance.now()
  await Promise.all(members.map((m) => m.start()))
  await Promise.all(members.map((m) => m.decided))
  const ms = performance.now() - t0
  const sent = members.reduce((sum, m) => sum + m.transport.stats.sent, 0)
  await Promise.all(members.map((m) => m.stop()))
  return { ms, sent }
}

/** One member's crypto per vote (all n members of the bench share this one process). */
async function cryptoCost(key: DigicapSigner): Promise<{ sign: number; recover: number }> {
  const jobId = keccak_256(new TextEncoder().encode('bench-crypto'))
  const votes = []
  let t0 = performance.now()
  for (let i = 0; i < 30; i++) {
    votes.push(
      await signVote(key, domain, {
        phase: 'prepare',
        jobId,
        view: BigInt(i),
        preparedView: 0n,
        ...PASS,
      }),
    )
  }
  const sign = (performance.now() - t0) / 30
  t0 = performance.now()
  for (const v of votes) recoverVoteSigner(domain, v)
  return { sign, recover: (performance.now() - t0) / 30 }
}

const sizes = process.argv.slice(2).map(Number)
for (const n of sizes.length === 0 ? [4, 7, 31] : sizes) {
  const ROUNDS = roundsFor(n)
  const meshStarted = performance.now()
  const nodes = await createMesh(n)
  const keys = signers(n)
  console.error(
    `n=${n}: mesh of ${n} nodes up in ${(performance.now() - meshStarted).toFixed(0)} ms`,
  )
  const rtt = await rawRoundTrip(nodes[0] as Libp2p, nodes[1] as Libp2p)
  await decideOnce(nodes, keys, -1)
  const runs = []
  for (let r = 0; r < ROUNDS; r++) {
    runs.push(await decideOnce(nodes, keys, r))
    console.error(
      `n=${n}: decision ${r + 1}/${ROUNDS} in ${(runs.at(-1) as { ms: number }).ms.toFixed(0)} ms`,
    )
  }
  const crypto = await cryptoCost(keys[0] as DigicapSigner)
  const latency = median(runs.map((x) => x.ms))
  const sent = median(runs.map((x) => x.sent))
  const goal = 3 * rtt + 5
  console.log(
    `n=${n}: verdict ${latency.toFixed(1)} ms (median of ${ROUNDS}), raw round trip ${rtt.toFixed(2)} ms, ` +
      `ratio ${(latency / rtt).toFixed(1)} round trips, goal 3 RTT + 5 ms = ${goal.toFixed(1)} ms ` +
      `(verdict / goal ×${(latency / goal).toFixed(1)}); ` +
      `${sent} messages per verdict; one sign ${crypto.sign.toFixed(2)} ms, one recover ` +
      `${crypto.recover.toFixed(2)} ms (the process signs ${3 * n} and recovers about ${3 * n * (n - 1)} votes per verdict)`,
  )
  await Promise.all(nodes.map((x) => x.stop()))
}
