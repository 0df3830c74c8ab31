/**
 * Review 118 (attacker): one seated member with an undecodable registered peer id stops every
 * honest member of its committee before PBFT starts.
 *
 * NodeRegistry takes any 1 … MAX_PEER_ID_LENGTH bytes as a peer id (`_checkProfile` checks only
 * the length), and a node may `update` it at any time. Once seated, each honest verifier builds
 * the PBFT committee with `Promise.all(members.map(… peerIdFromRegistered(…)))`: one member
 * whose bytes do not decode throws there, and the whole job ends `job-failed` on every honest
 * member — no before round, so the keyguard never releases the key; no certificate, so the job
 * times out and the escrow goes back to the executor. PBFT tolerates f silent members; a member
 * that registered `0x01` is worse than silent, and a timeout moves no reputation, so it costs the
 * attacker nothing (seating is its only cost).
 *
 * Real anvil with the settlement deployed, four verifier nodes on real libp2p: three honest, one
 * (the attacker) registered with the peer id bytes 0x01, running the stock verifier.
 */
import { privateKeySigner } from '@digicap/capsule-core'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { getBytes, parseEther } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ethersVerifierChain,
  type VerifierEvent,
  type VerifierNode,
  verifierNode,
} from '../src/node/index.ts'
import {
  anvilWallets,
  mineEvery,
  openAttestedJob,
  setupWorld,
  type World,
} from './helpers/world.ts'

const STAKE = parseEther('0.01')
let w: World
let nodes: DigicapNode[] = []
let verifiers: VerifierNode[] = []
let miner: ReturnType<typeof setInterval> | undefined
/** Events by member (0 … 2 honest, 3 the attacker). */
const eventsOf: VerifierEvent[][] = [[], [], [], []]

beforeAll(async () => {
  w = await setupWorld({
    fastPath: false,
    settlement: { seats: 4, sortitionWindow: 20, certificateBlocks: 600 },
  })
  const wallets = anvilWallets(w, [4, 6, 7, 8])
  nodes = await Promise.all(wallets.map(() => createDigicapNode()))
  for (const [i, wallet] of wallets.entries()) {
    const peerId = i === 3 ? '0x01' : (nodes[i] as DigicapNode).libp2p.peerId.toMultihash().bytes
    await (
      await w.c.nodeRegistry
        .connect(wallet)
        .register(peerId, `0x${'00'.repeat(32)}`, 2, { value: STAKE })
    ).wait()
  }
  verifiers = wallets.map((wallet, i) =>
    verifierNode({ pollMs: 200, openJobs: false, ticketWaves: false, settle: false })({
      libp2p: (nodes[i] as DigicapNode).libp2p,
      chain: ethersVerifierChain({
        addresses: w.addresses,
        settlement: w.addresses as never,
        runner: wallet,
      }),
      signer: privateKeySigner(wallet.privateKey as `0x${string}`),
      vrfKey: getBytes(wallet.privateKey),
      onEvent: (e) => eventsOf[i]?.push(e),
    }),
  )
  await Promise.all(verifiers.map((v) => v.start()))
  miner = mineEvery(w)
}, 120_000)

afterAll(async () => {
  if (miner !== undefined) clearInterval(miner)
  await Promise.allSettled(verifiers.map((v) => v.stop()))
  await Promise.allSettled(nodes.map((n) => n.stop()))
  await w?.stop()
})

describe('review 118: a seated member whose registered peer id does not decode', () => {
  it('is a silent member to the others: each honest member still opens its PBFT rounds', async () => {
    const { grantId } = await openAttestedJob(w, {
      nonce: new Uint8Array(32).fill(5),
    })
    // Each honest member ends its job's start one way or the other: its committee, or a failure.
    const outcome = (i: number) =>
      (eventsOf[i] as VerifierEvent[]).find(
        (e) =>
          (e.event === 'committee' || e.event === 'job-failed' || e.event === 'not-selected') &&
          e.jobId === grantId,
      )
    await expect
      .poll(() => [0, 1, 2].every((i) => outcome(i) !== undefined), { timeout: 60_000 })
      .toBe(true)
    const seen = [0, 1, 2].map((i) => {
      const e = outcome(i) as VerifierEvent
      return e.event === 'job-failed' ? `job-failed: ${e.error.message}` : e.event
    })
    // On the current code: each is 'job-failed: Please pass a multibase decoder …' (the
    // attacker's 0x01), and the job can only time out.
    expect(seen).toEqual(['committee', 'committee', 'committee'])
  }, 120_000)
})
