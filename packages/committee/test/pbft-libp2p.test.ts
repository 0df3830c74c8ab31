/**
 * PBFT on real libp2p nodes on loopback (TCP + noise + yamux). Faults: silent members are
 * nodes that never start their replica; lying members compute another verdict; the
 * equivocating member goes through a fault-injection wrapper of its outgoing path.
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import {
  type PbftCertificate,
  type PbftCommittee,
  type PbftNode,
  type PbftSend,
  signVote,
  verifyCertificate,
  verifyEquivocation,
} from '../src/index.ts'
import { domain, FAIL, jobId, PASS, pbftNetwork, signers } from './pbft-fixtures.ts'

/** Short enough that view changes happen within the test, long for a loaded box's view 0. */
const VIEW_TIMEOUT = 1000

const network = pbftNetwork()

interface Setup {
  n: number
  /** Members that never start (their libp2p node runs, their replica does not). */
  silent?: number[]
  /** Members whose own verdict differs. */
  liars?: number[]
  wrapSend?: Record<
    number,
    (send: PbftSend, key: DigicapSigner, committee: PbftCommittee) => PbftSend
  >
  viewTimeout?: number
}

async function run(setup: Setup) {
  const keys = signers(setup.n)
  const { committee } = await network.mesh(keys)
  const active: { index: number; node: PbftNode }[] = []
  for (let i = 0; i < setup.n; i++) {
    if (setup.silent?.includes(i)) continue
    const key = keys[i] as DigicapSigner
    const wrap = setup.wrapSend?.[i]
    const node = await network.member(i, {
      value: setup.liars?.includes(i) ? FAIL : PASS,
      viewTimeout: setup.viewTimeout ?? VIEW_TIMEOUT,
      ...(wrap === undefined ? {} : { wrapSend: (send: PbftSend) => wrap(send, key, committee) }),
    })
    active.push({ index: i, node })
  }
  await Promise.all(active.map((a) => a.node.start()))
  return { keys, committee, active }
}

function honest(active: { index: number; node: PbftNode }[], setup: Setup) {
  return active.filter(
    (a) => !setup.liars?.includes(a.index) && setup.wrapSend?.[a.index] === undefined,
  )
}

async function allDecide(nodes: { node: PbftNode }[]): Promise<PbftCertificate[]> {
  return Promise.all(nodes.map((a) => a.node.decided))
}

describe('PBFT over /digicap/pbft/1.0.0', () => {
  it('4 honest members agree in view 0 and each holds a valid certificate', async () => {
    // A timeout no honest run reaches: view 0 must decide.
    const setup = { n: 4, viewTimeout: 30_000 }
    const { committee, active } = await run(setup)
    const certs = await allDecide(active)
    for (const cert of certs) {
      expect(cert.view).toBe(0n)
      expect(cert.verdict).toBe(PASS.verdict)
      expect(cert.signers.length).toBeGreaterThanOrEqual(committee.quorum)
      verifyCertificate(cert, committee, { domain, jobId })
    }
  })

  it('a silent leader: the others change view and decide in view 1', async () => {
    const setup = { n: 4, silent: [0] }
    const { committee, active } = await run(setup)
    const certs = await allDecide(active)
    for (const cert of certs) {
      // View 1 unless the loaded box let view 1's timer pass too.
      expect(cert.view).toBeGreaterThanOrEqual(1n)
      expect(cert.verdict).toBe(PASS.verdict)
      verifyCertificate(cert, committee, { domain, jobId })
      expect(cert.signers).not.toContain(committee.members[0]?.address)
    }
  })

  it('f = 2 silent members of 7 (one of them the view-1 leader): still decided', async () => {
    const setup = { n: 7, silent: [1, 5] }
    const { committee, active } = await run(setup)
    for (const cert of await allDecide(active)) {
      expect(cert.verdict).toBe(PASS.verdict)
      verifyCertificate(cert, committee, { domain, jobId })
    }
  })

  it('f = 2 lying members of 7, one leading view 0: the honest verdict wins', async () => {
    const setup = { n: 7, liars: [0, 3] }
    const { committee, active } = await run(setup)
    const good = honest(active, setup)
    for (const cert of await allDecide(good)) {
      expect(cert.verdict).toBe(PASS.verdict)
      expect(cert.view).toBeGreaterThanOrEqual(1n)
      verifyCertificate(cert, committee, { domain, jobId })
    }
  })

  it('an equivocating member: a checkable proof, and the honest verdict still decided', async () => {
    // Member 1 prepares PASS to everyone and, to member 2 only, a second prepare for FAIL.
    const equivocate =
      (send: PbftSend, key: DigicapSigner, committee: PbftCommittee): PbftSend =>
      (to, message) => {
        send(to, message)
        if (message.vote.phase !== 'prepare') return
        void signVote(key, domain, { ...message.vote, ...FAIL }).then((vote) =>
          send(committee.members[2], { vote, proof: [] }),
        )
      }
    const setup = { n: 4, wrapSend: { 1: equivocate } }
    const { committee, active, keys } = await run(setup)
    for (const cert of await allDecide(honest(active, setup))) {
      expect(cert.verdict).toBe(PASS.verdict)
      verifyCertificate(cert, committee, { domain, jobId })
    }
    const witness = active.find((a) => a.index === 2)?.node as PbftNode
    // One proof per slot: a view change on a loaded box makes the liar equivocate in view 1 too.
    await expect
      .poll(() => witness.equivocations.length, { timeout: 10_000 })
      .toBeGreaterThanOrEqual(1)
    const views = witness.equivocations.map((p) => p.a.view)
    expect(new Set(views).size).toBe(views.length)
    for (const proof of witness.equivocations) {
      expect(proof.member).toBe(keys[1]?.address)
      verifyEquivocation(proof, domain, committee)
    }
  })
})
