/**
 * Review 118 (attacker): the verifier catches an equivocating member and throws the proof away.
 *
 * SPEC-PBFT §7 and the committee README: a member that receives a second, conflicting signed vote
 * of a member in one slot "reports the proof", and `AttestationHub.reportEquivocation` slashes
 * `equivocationSlash` and zeroes the member's reputation (ADR 0027). The shipped verifier
 * (`pbftRounds` in pbft-round.ts, driven by `verifierNode`) builds its replicas without
 * `onEquivocation`, exposes no proofs, emits no event and never calls `reportEquivocation`: the
 * replica detects the equivocation (refused as `PBFT_VOTE:equivocation`) and the proof is lost,
 * so in production an equivocating member is never slashed — the hub's slashing path is dead.
 *
 * Real libp2p nodes on loopback: member 0 runs the verifier's round; member 3 sends it a prepare
 * for the value and a second, conflicting prepare of the same view.
 *
 * Since ADR 0088 the round keeps the proof (`equivocations`) and hands it to `onEquivocation`;
 * the verifier node reports it on chain (`verifier-equivocation-slashed.test.ts`).
 */
import { randomBytes } from 'node:crypto'
import { type DigicapSigner, privateKeySigner } from '@digicap/capsule-core'
import { beforeRoundId, pbftCommittee, pbftDomain, signVote } from '@digicap/committee'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { encodeFrame, encodePbftMessage, PBFT_PROTOCOL } from '@digicap/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pbftRounds } from '../src/node/index.ts'

const domain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
const jobId = new Uint8Array(randomBytes(32))
const pass = { verdict: 7, evidenceHash: new Uint8Array(randomBytes(32)) }
const fail = { verdict: 3, evidenceHash: new Uint8Array(randomBytes(32)) }
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

describe('review 118: an equivocation the verifier catches', () => {
  it('reaches the node (a proof it can send to reportEquivocation), not only a refusal count', async () => {
    const committee = pbftCommittee(
      keys.map((k, i) => ({ address: k.address, peerId: nodes[i]!.libp2p.peerId.toString() })),
    )
    const rounds = pbftRounds(nodes[0]!.libp2p)
    const told: { member: string; roundId: Uint8Array }[] = []
    const leave = new AbortController()
    const round = await rounds.open({
      committee,
      domain,
      roundIds: [beforeRoundId(jobId), jobId],
      signer: keys[0]!,
      viewTimeoutMs: 60_000,
      onEquivocation: (proof, roundId) => told.push({ member: proof.member, roundId }),
    })
    const deciding = round.decide(jobId, pass, 60_000, leave.signal).catch(() => undefined)
    try {
      const stream = await nodes[3]!.libp2p.dialProtocol(nodes[0]!.libp2p.peerId, PBFT_PROTOCOL)
      for (const value of [pass, fail]) {
        const vote = await signVote(keys[3]!, domain, {
          phase: 'prepare',
          jobId,
          view: 0n,
          preparedView: 0n,
          ...value,
        })
        stream.send(encodeFrame(encodePbftMessage({ vote, proof: [] })))
      }
      // The replica caught it: both signatures held, the second vote refused as an equivocation.
      await expect
        .poll(() => round.transport.stats.refused['PBFT_VOTE:equivocation'] ?? 0, {
          timeout: 20_000,
        })
        .toBe(1)
      // ... and the proof reaches the node: kept by the round and handed to onEquivocation
      // (before ADR 0088: dropped, `equivocations` undefined).
      expect((round as unknown as { equivocations?: unknown[] }).equivocations).toEqual([
        expect.objectContaining({ member: keys[3]!.address }),
      ])
      expect(told).toEqual([{ member: keys[3]!.address, roundId: jobId }])
    } finally {
      leave.abort()
      await deciding
      await round.stop()
      await rounds.stop()
    }
  }, 60_000)
})
