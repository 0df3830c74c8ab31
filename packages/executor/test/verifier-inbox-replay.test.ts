/**
 * Review 118 (attacker): a member still watching its run is pre-loaded with view changes whose
 * "prepared" proofs are junk, and the start of its round then freezes the whole node.
 *
 * While a member has no value yet, its round keeps up to PBFT_INBOX_LIMIT (256) votes unchecked
 * in an inbox. `decide()` replays the inbox with `await r.receive(…)` one after the other; each
 * junk view change costs 64 full recoveries (`#preparedProofHolds` recovers every proof entry),
 * all synchronous, and a rejected `receive` settles in a microtask: the replay never yields to the
 * event loop. One Byzantine member's 256 frames (~2.8 MB, no signature work on its side) buy
 * 16,384 recoveries in one block: every other job's PBFT, the libp2p pings, the chain polls and
 * the view timers of this node stop for that long (tens of seconds).
 *
 * Real libp2p nodes on loopback: member 0 runs the verifier's round (`pbftRounds`); member 3 sends
 * it 256 such frames before member 0 knows its value. A heartbeat timer measures the longest
 * stall of member 0's event loop while it takes its inbox.
 *
 * Since ADR 0088 the inbox keeps at most PBFT_INBOX_PER_MEMBER distinct votes of a member (a copy
 * is kept once), the replay yields between votes, and a junk proof costs at most 2f + 1 checks
 * once: the frames are counted as received, the inbox stays small. The second case sends
 * distinct junk (each view change signed anew, one per view) to fill the member's share.
 */
import { randomBytes } from 'node:crypto'
import { type DigicapSigner, privateKeySigner } from '@digicap/capsule-core'
import { beforeRoundId, pbftCommittee, pbftDomain, signVote } from '@digicap/committee'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { encodePbftMessage, PBFT_PROTOCOL, type PbftVote, sendMessage } from '@digicap/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PBFT_INBOX_LIMIT, PBFT_INBOX_PER_MEMBER, pbftRounds } from '../src/node/index.ts'

const domain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
/** The job id of the round being pre-loaded. */
let currentJob = new Uint8Array(32)
const pass = { verdict: 7, evidenceHash: new Uint8Array(randomBytes(32)) }
let nodes: DigicapNode[] = []
let keys: DigicapSigner[] = []

beforeAll(async () => {
  nodes = await Promise.all([0, 1, 2, 3].map(() => createDigicapNode()))
  await nodes[3]!.libp2p.dial(nodes[0]!.libp2p.getMultiaddrs()[0]!)
  keys = nodes.map(() => privateKeySigner(new Uint8Array(randomBytes(32))))
}, 60_000)

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()))
})

/** A low-s, v = 27 signature of random r and s: the right shape, recovering to junk. */
function junkSignature(): Uint8Array {
  const sig = new Uint8Array(randomBytes(65))
  sig[32] = (sig[32] as number) & 0x3f
  sig[64] = 27
  return sig
}

/**
 * Member 3 pre-loads member 0's round with 256 view changes (`viewChange(i)`, each with 64 junk
 * prepares), then member 0 takes its inbox: the longest event-loop stall meanwhile.
 */
async function preloadAndTake(viewChange: (i: number) => Promise<PbftVote>) {
  const jobId = new Uint8Array(randomBytes(32))
  currentJob = jobId
  const committee = pbftCommittee(
    keys.map((k, i) => ({ address: k.address, peerId: nodes[i]!.libp2p.peerId.toString() })),
  )
  const rounds = pbftRounds(nodes[0]!.libp2p)
  const leave = new AbortController()
  const round = await rounds.open({
    committee,
    domain,
    roundIds: [beforeRoundId(jobId), jobId],
    signer: keys[0]!,
    viewTimeoutMs: 60_000,
  })
  let deciding: Promise<unknown> | undefined
  let heartbeat: ReturnType<typeof setInterval> | undefined
  try {
    const junk = (): PbftVote[] =>
      Array.from({ length: 64 }, () => ({
        phase: 'prepare' as const,
        jobId,
        view: 0n,
        preparedView: 0n,
        ...pass,
        signature: junkSignature(),
      }))
    // 16 frames a stream (a long burst on one stream was seen reset on this box).
    for (let i = 0; i < PBFT_INBOX_LIMIT; i += 16) {
      const stream = await nodes[3]!.libp2p.dialProtocol(nodes[0]!.libp2p.peerId, PBFT_PROTOCOL)
      for (let j = 0; j < 16; j++) {
        await sendMessage(
          stream,
          encodePbftMessage({ vote: await viewChange(i + j), proof: junk() }),
        )
      }
      await stream.close()
      await expect.poll(() => round.transport.stats.received, { timeout: 30_000 }).toBe(i + 16)
    }
    const kept = round.waiting
    expect(kept).toBeGreaterThanOrEqual(1)
    // At most a member's share (was: all 256, each replayed at full price).
    expect(kept).toBeLessThanOrEqual(PBFT_INBOX_PER_MEMBER)
    // Member 0 now has its value: its round starts and takes the inbox.
    let last = performance.now()
    let longest = 0
    heartbeat = setInterval(() => {
      const now = performance.now()
      longest = Math.max(longest, now - last)
      last = now
    }, 20)
    deciding = round.decide(jobId, pass, 300_000, leave.signal).catch(() => undefined)
    await expect.poll(() => round.refused, { timeout: 240_000 }).toBeGreaterThanOrEqual(kept)
    return { kept, longest: Math.round(longest) }
  } finally {
    if (heartbeat !== undefined) clearInterval(heartbeat)
    leave.abort()
    await deciding
    await round.stop()
    await rounds.stop()
  }
}

describe('review 118: a watching member’s inbox full of junk prepared proofs', () => {
  it('is taken without stalling the node’s event loop for seconds (256 copies of one view change)', async () => {
    // Member 3's own view change for view 1, claiming PASS prepared in view 0 (signed once).
    let vc: PbftVote | undefined
    const { kept, longest } = await preloadAndTake(async (_i) => {
      vc ??= await signVote(keys[3]!, domain, {
        phase: 'view-change',
        jobId: currentJob,
        view: 1n,
        preparedView: 1n,
        ...pass,
      })
      return vc
    })
    // A copy is kept once.
    expect(kept).toBe(1)
    // On the code before ADR 0088: one stall of 41 s here (16,384 recoveries back to back).
    expect(longest).toBeLessThan(2000)
  }, 300_000)

  it('is taken without stalling the node’s event loop (256 distinct view changes, 16 views)', async () => {
    const { kept, longest } = await preloadAndTake((i) =>
      signVote(keys[3]!, domain, {
        phase: 'view-change',
        jobId: currentJob,
        view: BigInt(1 + (i % 16)),
        preparedView: 1n,
        verdict: pass.verdict,
        evidenceHash: new Uint8Array(randomBytes(32)),
      }),
    )
    expect(kept).toBe(PBFT_INBOX_PER_MEMBER)
    expect(longest).toBeLessThan(2000)
  }, 300_000)
})
