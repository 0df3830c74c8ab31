/**
 * The verifier's PBFT round (pbft-round.ts) on real libp2p nodes over loopback, under hostile
 * input while a member is still watching its run (votes wait in its inbox): garbage, an
 * oversized frame, a stranger's stream, a vote for another job, one far out of view, a vote
 * signed by another member than the sender, replays and a flood past the inbox bound. Nothing
 * throws into the host, the inbox stays bounded, and the four members still decide. Several
 * jobs at once (ADR 0040): two jobs whose committees overlap on three verifiers both decide
 * while a stranger floods a member with bogus job ids; more jobs than the bound wait, then are
 * refused with a typed error. Only a member that asks for a round's certificate builds it
 * (ADR 0053): the others decide on the counted commits.
 */
import { randomBytes } from 'node:crypto'
import { type DigicapSigner, privateKeySigner } from '@digicap/capsule-core'
import {
  beforeRoundId,
  type PbftCommittee,
  pbftCommittee,
  pbftDomain,
  signVote,
  verifyCertificate,
} from '@digicap/committee'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { encodeFrame, encodePbftMessage, PBFT_PROTOCOL } from '@digicap/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PbftRound, pbftRounds } from '../src/node/index.ts'

const INBOX = 16

const domain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
const jobId = new Uint8Array(randomBytes(32))
const beforeId = beforeRoundId(jobId)
const value = { verdict: 7, evidenceHash: new Uint8Array(randomBytes(32)) }
let nodes: DigicapNode[] = []
let stranger: DigicapNode
let keys: DigicapSigner[]
let committee: PbftCommittee

beforeAll(async () => {
  nodes = await Promise.all([0, 1, 2, 3, 4].map(() => createDigicapNode()))
  stranger = await createDigicapNode()
  for (const [i, a] of nodes.entries()) {
    for (const b of nodes.slice(i + 1)) await a.libp2p.dial(b.libp2p.getMultiaddrs()[0]!)
  }
  await stranger.libp2p.dial(nodes[0]!.libp2p.getMultiaddrs()[0]!)
  keys = nodes.map(() => privateKeySigner(new Uint8Array(randomBytes(32))))
  committee = committeeOf([0, 1, 2, 3])
}, 60_000)

/** The committee of nodes `seats`, in that leader order. */
function committeeOf(seats: number[]): PbftCommittee {
  return pbftCommittee(
    seats.map((i) => ({ address: keys[i]!.address, peerId: nodes[i]!.libp2p.peerId.toString() })),
  )
}

afterAll(async () => {
  await Promise.all([...nodes, stranger].map((n) => n.stop()))
})

/** Raw bytes on one stream from `from` to node 0; the receiver may abort first (the point). */
async function rawSend(from: DigicapNode, bytes: Uint8Array): Promise<void> {
  try {
    const stream = await from.libp2p.dialProtocol(nodes[0]!.libp2p.peerId, PBFT_PROTOCOL)
    stream.send(bytes)
    await stream.close()
  } catch {}
}

const voteFrame = async (signer: DigicapSigner, v: Partial<Parameters<typeof signVote>[2]> = {}) =>
  encodeFrame(
    encodePbftMessage({
      vote: await signVote(signer, domain, {
        phase: 'prepare',
        jobId,
        view: 0n,
        preparedView: 0n,
        ...value,
        ...v,
      }),
      proof: [],
    }),
  )

const until = async (cond: () => boolean, ms = 15_000) => {
  const end = Date.now() + ms
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 25))
}

describe('the verifier PBFT round', () => {
  it('keeps hostile votes out of a watching member’s inbox (bounded), then the four decide', async () => {
    const rounds = nodes.slice(0, 4).map((n) => pbftRounds(n.libp2p))
    const open = (i: number) =>
      rounds[i]!.open({
        committee,
        domain,
        roundIds: [beforeId, jobId],
        signer: keys[i]!,
        viewTimeoutMs: 3000,
        inboxLimit: INBOX,
      })
    const members: PbftRound[] = await Promise.all([0, 1, 2, 3].map(open))
    const target = members[0]!
    const sender = nodes[1]!
    try {
      // Member 0 is still watching: everything below reaches its transport before its value.
      await rawSend(sender, new Uint8Array([0, 0, 0, 5, 1, 2, 3, 4, 5])) // garbage frame
      await rawSend(sender, encodeFrame(new Uint8Array(70 * 1024))) // oversized
      await rawSend(stranger, await voteFrame(keys[1]!)) // a stranger's stream
      await rawSend(sender, await voteFrame(keys[1]!, { jobId: new Uint8Array(32) })) // another job
      await rawSend(sender, await voteFrame(keys[1]!, { view: 1000n })) // far out of view
      await rawSend(sender, await voteFrame(keys[2]!)) // signed by member 2, sent by member 1
      const replayed = await voteFrame(keys[1]!)
      for (let i = 0; i < 3; i++) await rawSend(sender, replayed)
      // The other job's vote never reaches this job: the endpoint refuses it (no session holds it).
      await until(() => target.transport.stats.received >= 5)
      expect(target.transport.stats.nonMember).toBe(1)
      expect(target.transport.stats.rejected).toBeGreaterThanOrEqual(2) // garbage, oversized
      expect(rounds[0]!.stats?.refused['PBFT_VOTE:wrong-job']).toBe(1)
      // A flood of well-formed votes past the bound: the oldest go, the inbox stays bounded.
      const flood = await voteFrame(keys[3]!, { phase: 'commit', view: 2n })
      for (let i = 0; i < INBOX + 20; i++) await rawSend(nodes[3]!, flood)
      await until(() => target.transport.stats.received >= 5 + INBOX + 20)
      expect(target.waiting).toBeLessThanOrEqual(INBOX)
      // The honest members decide, member 0 last (it takes its inbox first).
      const others = [1, 2, 3].map((i) => members[i]!.decide(jobId, value, 30_000))
      await new Promise((r) => setTimeout(r, 300))
      const decisions = await Promise.all([target.decide(jobId, value, 30_000), ...others])
      for (const d of decisions) expect(d).toMatchObject(value)
      // Deciding built no certificate; the member that asks (the submitter) builds one.
      expect(members.map((m) => m.certified)).toEqual([0, 0, 0, 0])
      const certificate = await target.certify(jobId, 30_000)
      expect(() => verifyCertificate(certificate, committee, { domain, jobId })).not.toThrow()
      expect(certificate.verdict).toBe(7)
      expect(members.map((m) => m.certified)).toEqual([1, 0, 0, 0])
      expect(target.refused).toBeGreaterThanOrEqual(3) // out of view, wrong signer, replays
      // The before round's votes waited apart (the flood was the final round's): it decides too.
      const before = { verdict: 1, evidenceHash: value.evidenceHash }
      const rounds2 = await Promise.all(members.map((m) => m.decide(beforeId, before, 30_000)))
      for (const d of rounds2) expect(d.verdict).toBe(1)
      const beforeCertificate = await members[2]!.certify(beforeId, 30_000)
      expect(beforeCertificate.jobId).toEqual(beforeId)
      expect(() =>
        verifyCertificate(beforeCertificate, committee, { domain, jobId: beforeId }),
      ).not.toThrow()
      expect(members.map((m) => m.certified)).toEqual([1, 0, 1, 0])
      await expect(target.decide(jobId, value, 1000)).rejects.toMatchObject({
        code: 'VERIFIER_JOB',
        reason: 'round',
      })
      await expect(target.certify(new Uint8Array(32), 1000)).rejects.toMatchObject({
        code: 'VERIFIER_JOB',
        reason: 'round',
      })
    } finally {
      await Promise.all(members.map((m) => m.stop()))
      await Promise.all(rounds.map((r) => r.stop()))
    }
  }, 60_000)

  it('members shown different runs decide the verdict their observations justify, each with its statement (ADR 0087)', async () => {
    // The executor withheld the during quote from members 2 and 3: f + 1 misses fail the phase.
    const job = new Uint8Array(randomBytes(32))
    const statement = (verdict: number) => {
      const hash = new Uint8Array(32)
      hash.set(job.subarray(0, 31))
      hash[31] = verdict
      return hash
    }
    const rounds = nodes.slice(0, 4).map((n) => pbftRounds(n.libp2p))
    const members = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        rounds[i]!.open({
          committee,
          domain,
          roundIds: [job],
          signer: keys[i]!,
          viewTimeoutMs: 3000,
        }),
      ),
    )
    try {
      const seen = [7, 7, 5, 5]
      const decisions = await Promise.all(
        members.map((m, i) =>
          m.decide(
            job,
            { verdict: seen[i]!, evidenceHash: statement(seen[i]!) },
            30_000,
            undefined,
            statement,
          ),
        ),
      )
      for (const d of decisions) expect(d).toMatchObject({ verdict: 5, evidenceHash: statement(5) })
    } finally {
      await Promise.all(members.map((m) => m.stop()))
      await Promise.all(rounds.map((r) => r.stop()))
    }
  }, 60_000)

  it('two jobs whose committees overlap on three verifiers decide at once, under a flood of bogus job ids from a stranger', async () => {
    // Job X: nodes 0–3; job Y: nodes 1–4 (another leader). Nodes 1, 2, 3 sit on both.
    const jobX = new Uint8Array(randomBytes(32))
    const jobY = new Uint8Array(randomBytes(32))
    const seatsX = [0, 1, 2, 3]
    const seatsY = [4, 3, 2, 1]
    const rounds = nodes.map((n) => pbftRounds(n.libp2p))
    const openJob = (job: Uint8Array, seats: number[]) =>
      Promise.all(
        seats.map((i) =>
          rounds[i]!.open({
            committee: committeeOf(seats),
            domain,
            roundIds: [job],
            signer: keys[i]!,
            viewTimeoutMs: 5000,
          }),
        ),
      )
    const [x, y] = await Promise.all([openJob(jobX, seatsX), openJob(jobY, seatsY)])
    await stranger.libp2p.dial(nodes[2]!.libp2p.getMultiaddrs()[0]!)
    let flooding = true
    let floodSent = 0
    let floodFailed = 0
    const floodErrors = new Set<string>()
    const flood = (async () => {
      // Well-formed votes for random job ids, signed by a key outside every committee.
      const outsider = privateKeySigner(new Uint8Array(randomBytes(32)))
      const frame = await voteFrame(outsider, { jobId: new Uint8Array(randomBytes(32)) })
      let sent = 0
      while (flooding && sent < 2000) {
        const failedBefore = floodFailed
        const refusedBefore = rounds[2]!.stats?.nonMember ?? 0
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            try {
              const stream = await stranger.libp2p.dialProtocol(
                nodes[2]!.libp2p.peerId,
                PBFT_PROTOCOL,
              )
              stream.send(frame)
              await stream.close()
              floodSent++
            } catch (err) {
              // A refused stream is the node defending itself, but if none gets through the
              // test proves nothing: count them, keep the first reasons for the failure message.
              floodFailed++
              if (floodErrors.size < 4) floodErrors.add(String((err as Error).message ?? err))
            }
          }),
        )
        sent += 16
        // The node aborts a stranger's stream, so the stranger sees most sends fail. A batch that
        // failed whole and reached no handler means the connection itself is gone (the node may
        // cut it): hang up what is left and dial afresh. A plain dial would hand back the dying
        // connection and every later stream would fail on it too (a flake seen in CI).
        const refused = (rounds[2]!.stats?.nonMember ?? 0) - refusedBefore
        if (floodFailed - failedBefore === 16 && refused === 0) {
          await stranger.libp2p.hangUp(nodes[2]!.libp2p.peerId).catch(() => {})
          await stranger.libp2p.dial(nodes[2]!.libp2p.getMultiaddrs()[0]!).catch(() => {})
        }
      }
      return sent
    })()
    try {
      // The flood is on before the rounds start, and goes on while they run.
      await until(() => (rounds[2]!.stats?.nonMember ?? 0) >= 16)
      expect(
        rounds[2]!.stats?.nonMember,
        `flood: ${floodSent} votes sent, ${floodFailed} dials failed (${[...floodErrors].join('; ')})`,
      ).toBeGreaterThanOrEqual(16)
      // Both running on the shared members at once: neither waits for the other.
      expect(rounds[2]!.running).toBe(2)
      const valueY = { verdict: 3, evidenceHash: new Uint8Array(randomBytes(32)) }
      const [decidedX, decidedY] = await Promise.all([
        Promise.all(x.map((m) => m.decide(jobX, value, 30_000))),
        Promise.all(y.map((m) => m.decide(jobY, valueY, 30_000))),
      ])
      for (const d of decidedX) expect(d.verdict).toBe(7)
      for (const d of decidedY) expect(d.verdict).toBe(3)
      // Each job's leader certifies (its submitter); node 3 is job Y's and sits on job X too.
      verifyCertificate(await x[0]!.certify(jobX, 30_000), committeeOf(seatsX), {
        domain,
        jobId: jobX,
      })
      const certY = await y[0]!.certify(jobY, 30_000)
      verifyCertificate(certY, committeeOf(seatsY), { domain, jobId: jobY })
      expect(certY.verdict).toBe(3)
      expect([...x, ...y].map((m) => m.certified)).toEqual([1, 0, 0, 0, 1, 0, 0, 0])
      const during = rounds[2]!.stats?.nonMember ?? 0
      flooding = false
      // The stranger's streams were cut unread; none of its votes reached a job.
      expect(await flood).toBeGreaterThanOrEqual(during)
      const shared = [x[2]!, y[2]!]
      for (const m of shared)
        expect(m.transport.stats.refused['PBFT_VOTE:wrong-job']).toBeUndefined()
    } finally {
      flooding = false
      await flood
      await Promise.all([...x, ...y].map((m) => m.stop()))
      await Promise.all(rounds.map((r) => r.stop()))
    }
  }, 60_000)

  it('more jobs than the bound wait for a slot, then are refused (busy); a round id is one job’s', async () => {
    const rounds = pbftRounds(nodes[0]!.libp2p, { maxJobs: 1, maxWaiting: 1 })
    const params = (id: Uint8Array, signal?: AbortSignal) => ({
      committee,
      domain,
      roundIds: [id],
      signer: keys[0]!,
      viewTimeoutMs: 3000,
      ...(signal === undefined ? {} : { signal }),
    })
    const first = await rounds.open(params(jobId))
    let second: PbftRound | undefined
    const opening = rounds.open(params(new Uint8Array(randomBytes(32)))).then((r) => {
      second = r
    })
    await until(() => rounds.queued === 1)
    expect(second).toBeUndefined()
    // One running, one waiting: a third is refused at once, typed.
    await expect(rounds.open(params(new Uint8Array(randomBytes(32))))).rejects.toMatchObject({
      code: 'VERIFIER_JOB',
      reason: 'busy',
    })
    await first.stop()
    await opening
    expect(rounds.running).toBe(1)
    // The same round id twice on one node is refused; a waiting job whose signal fires leaves.
    const wide = pbftRounds(nodes[1]!.libp2p, { maxJobs: 2 })
    const held = await wide.open(params(jobId))
    await expect(wide.open(params(jobId))).rejects.toMatchObject({ reason: 'round' })
    expect(wide.running).toBe(1)
    const gone = new AbortController()
    const third = wide.open(params(new Uint8Array(randomBytes(32))))
    const fourth = wide.open(params(new Uint8Array(randomBytes(32)), gone.signal))
    await third.then((r) => r.stop())
    gone.abort()
    await held.stop()
    const late = await fourth.catch((e: unknown) => e)
    // Either it got the freed slot before the abort, or it left the queue: never both, never lost.
    if (late instanceof Error) expect(late).toMatchObject({ reason: 'stopped' })
    else await (late as PbftRound).stop()
    await second?.stop()
    // Stopping the rounds refuses a job still waiting.
    const one = pbftRounds(nodes[2]!.libp2p, { maxJobs: 1 })
    const busy = await one.open(params(jobId))
    const waiting = one.open(params(new Uint8Array(randomBytes(32))))
    await until(() => one.queued === 1)
    await one.stop()
    await expect(waiting).rejects.toMatchObject({ reason: 'stopped' })
    await busy.stop()
    await Promise.all([rounds.stop(), wide.stop()])
  }, 30_000)
})
