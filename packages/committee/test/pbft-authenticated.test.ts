/**
 * ADR 0047: a member's pre-prepare, prepare and commit count on arrival from its authenticated
 * stream, and their signatures are checked before they are used. The attack: an attacker holding
 * a member's stream (its libp2p key) but not its Ethereum key sends votes with bad signatures.
 * Such a vote is never in a certificate, a view change's prepared proof or an equivocation proof;
 * it is reported as the member's fault; a peer outside the committee counts for nothing.
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import { encodeFrame, encodePbftMessage, PBFT_PROTOCOL } from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import { type PbftNode, signVote, verifyCertificate } from '../src/index.ts'
import {
  domain,
  FAIL,
  jobId,
  observedReplica,
  PASS,
  paperCommittee,
  pbftNetwork,
  signers,
} from './pbft-fixtures.ts'

type Phase = 'pre-prepare' | 'prepare' | 'commit' | 'view-change'

const keys = signers(5)
const key = (i: number) => keys[i] as DigicapSigner
/** Four members; key 4 is an outsider. */
const committee = paperCommittee(keys.slice(0, 4))
const member = (i: number) => committee.members[i] as (typeof committee.members)[number]

/** `phase` of the value, signed by `by` (a member's own key, or another's: a bad signature). */
const vote = (by: number, phase: Phase, view = 0n, value = PASS) =>
  signVote(key(by), domain, { phase, jobId, view, preparedView: 0n, ...value })

/** Member 1's replica (not the view-0 leader), recording what it sends and reports. */
const replica = () => observedReplica({ committee, signer: key(1) }, keys.slice(0, 4))

describe('PbftReplica: votes counted on arrival, signatures checked before use', () => {
  it('a commit with a bad signature counts, is checked before the certificate, and is never in it', async () => {
    const { r, sent, faults } = await replica()
    await r.receive(member(0), { vote: await vote(0, 'pre-prepare'), proof: [] })
    for (const i of [2, 3])
      await r.receive(member(i), { vote: await vote(i, 'prepare'), proof: [] })
    expect(sent.map((m) => m.vote.phase)).toEqual(['prepare', 'commit'])
    // Member 3's stream sends a commit signed with member 2's key: it counts for now.
    await expect(
      r.receive(member(3), { vote: await vote(2, 'commit'), proof: [] }),
    ).resolves.toBeUndefined()
    // Its own commit, member 3's and member 0's make three: the check drops member 3's.
    await r.receive(member(0), { vote: await vote(0, 'commit'), proof: [] })
    expect(r.certificate).toBeUndefined()
    expect(faults).toHaveLength(1)
    expect(faults[0]).toMatchObject({ reason: 'signature' })
    expect(faults[0]?.details).toMatchObject({ signer: member(3).address, phase: 'commit' })
    // Member 3 is faulty now: its next vote is checked on arrival.
    await expect(
      r.receive(member(3), { vote: await vote(0, 'commit'), proof: [] }),
    ).rejects.toMatchObject({ reason: 'signature' })
    await r.receive(member(2), { vote: await vote(2, 'commit'), proof: [] })
    const certificate = await r.decided
    verifyCertificate(certificate, committee, { domain, jobId })
    expect(certificate.signers).not.toContain(member(3).address)
    expect(new Set(certificate.signers)).toEqual(new Set([0, 1, 2].map((i) => member(i).address)))
    r.stop()
  })

  it('a prepare with a bad signature counts towards the commit, and never enters a prepared proof', async () => {
    const { r, sent, faults } = await replica()
    await r.receive(member(0), { vote: await vote(0, 'pre-prepare'), proof: [] })
    await r.receive(member(2), { vote: await vote(2, 'prepare'), proof: [] })
    await r.receive(member(3), { vote: await vote(0, 'prepare'), proof: [] })
    // Counted: member 1 committed on its own, member 2's and member 3's (bad) prepares.
    expect(sent.map((m) => m.vote.phase)).toEqual(['prepare', 'commit'])
    expect(faults).toHaveLength(0)
    // f + 1 members ask for view 1: member 1 joins, and its view change must prove what it
    // prepared with 2f + 1 signatures that hold. Two do: it claims nothing prepared.
    for (const i of [0, 2]) {
      await r.receive(member(i), { vote: await vote(i, 'view-change', 1n), proof: [] })
    }
    const viewChange = sent.find((m) => m.vote.phase === 'view-change')
    expect(viewChange?.vote.preparedView).toBe(0n)
    expect(viewChange?.proof).toEqual([])
    expect(faults.map((f) => f.details)).toMatchObject([
      { signer: member(3).address, phase: 'prepare' },
    ])
    r.stop()
  })

  it('the prepared proof of a view change holds 2f + 1 good prepares when there are', async () => {
    const { r, sent } = await replica()
    await r.receive(member(0), { vote: await vote(0, 'pre-prepare'), proof: [] })
    for (const i of [0, 2])
      await r.receive(member(i), { vote: await vote(i, 'prepare'), proof: [] })
    for (const i of [0, 2]) {
      await r.receive(member(i), { vote: await vote(i, 'view-change', 1n), proof: [] })
    }
    const viewChange = sent.find((m) => m.vote.phase === 'view-change')
    expect(viewChange?.vote.preparedView).toBe(1n)
    expect(viewChange?.proof).toHaveLength(3)
    r.stop()
  })

  it('a bad signature cannot make an equivocation proof against the member', async () => {
    const { r, faults, proofs } = await replica()
    await r.receive(member(0), { vote: await vote(0, 'pre-prepare'), proof: [] })
    // Member 2's stream: a PASS prepare signed with member 3's key, then its own FAIL prepare.
    await r.receive(member(2), { vote: await vote(3, 'prepare'), proof: [] })
    await expect(
      r.receive(member(2), { vote: await vote(2, 'prepare', 0n, FAIL), proof: [] }),
    ).resolves.toBeUndefined()
    expect(proofs).toHaveLength(0)
    expect(faults.map((f) => f.details)).toMatchObject([
      { signer: member(2).address, phase: 'prepare' },
    ])
    // Two good, conflicting votes still make a proof.
    await r.receive(member(3), { vote: await vote(3, 'prepare', 0n, FAIL), proof: [] })
    await expect(
      r.receive(member(3), { vote: await vote(3, 'prepare'), proof: [] }),
    ).rejects.toMatchObject({ reason: 'equivocation' })
    expect(proofs.map((p) => p.member)).toEqual([member(3).address])
    r.stop()
  })

  it('refuses a vote from a peer outside the committee, or from a member address on another peer', async () => {
    const { r, sent } = await replica()
    await r.start()
    const outsider = { address: key(4).address, peerId: 'peer-4' }
    await expect(
      r.receive(outsider, { vote: await vote(4, 'prepare'), proof: [] }),
    ).rejects.toMatchObject({ reason: 'non-member' })
    // A peer naming member 0's address (the leader) is not member 0's stream.
    await expect(
      r.receive(
        { address: member(0).address, peerId: 'peer-4' },
        { vote: await vote(0, 'pre-prepare'), proof: [] },
      ),
    ).rejects.toMatchObject({ reason: 'non-member' })
    // Its observation (sent on start) and nothing else.
    expect(sent.map((m) => m.vote.phase)).toEqual(['observation'])
    r.stop()
  })
})

const network = pbftNetwork()

describe('on real libp2p nodes', () => {
  it('votes with bad signatures on a member’s authenticated stream: reported, never certified', async () => {
    const { mesh, committee: real } = await network.mesh(keys.slice(0, 4))
    const faults = new Map<number, string[]>()
    const members: PbftNode[] = []
    for (const i of [0, 2, 3]) {
      faults.set(i, [])
      members.push(
        await network.member(i, { onFault: (e) => faults.get(i)?.push(String(e.details?.signer)) }),
      )
    }
    // Member 1's node holds its libp2p key but not its Ethereum key: its prepare and commit are
    // signed with member 2's key, sent before the round starts so they are first in their slots.
    const forged = [await vote(2, 'prepare'), await vote(2, 'commit')]
    for (const i of [0, 2, 3]) {
      const stream = await (mesh[1] as Libp2p).dialProtocol(
        (mesh[i] as Libp2p).peerId,
        PBFT_PROTOCOL,
      )
      for (const v of forged) stream.send(encodeFrame(encodePbftMessage({ vote: v, proof: [] })))
      await stream.close()
    }
    for (const m of members) {
      await expect.poll(() => m.transport.stats.received, { timeout: 10_000 }).toBe(2)
    }
    for (const cert of await network.decide()) {
      verifyCertificate(cert, real, { domain, jobId })
      expect(cert.signers).not.toContain(key(1).address)
    }
    // Each member checked member 1's commit when it was about to certify with it.
    for (const [, seen] of faults) expect(seen).toEqual([key(1).address])
  })
})
