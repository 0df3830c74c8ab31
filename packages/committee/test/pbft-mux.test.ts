/**
 * The node-wide PBFT endpoint (`createPbftMux`) on real libp2p nodes on loopback: votes travel on
 * one kept stream per peer (not a stream per vote), a kept stream that dies is replaced, two
 * jobs share the endpoint, a member's frames for a job no session holds never reach a replica,
 * and the session bound is a typed refusal.
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import { encodeFrame, encodePbftMessage, PBFT_PROTOCOL, type PbftMessage } from '@digicap/protocol'
import type { Libp2p, Stream, StreamHandler } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createPbftMux,
  type PbftCommittee,
  type PbftHost,
  type PbftMux,
  PbftReplica,
  signVote,
  verifyCertificate,
} from '../src/index.ts'
import { createMesh, domain, meshCommittee, PASS, signers } from './pbft-fixtures.ts'

const N = 4
let mesh: Libp2p[] = []
let keys: DigicapSigner[]
let committee: PbftCommittee
/** Inbound PBFT streams each node's handler was given. */
const inboundStreams = Array.from({ length: N }, () => 0)

/** The node, with its PBFT handler counting the streams it is given. */
function counting(i: number): PbftHost {
  const node = mesh[i] as Libp2p
  return {
    peerId: node.peerId,
    getConnections: (...a) => node.getConnections(...a),
    dialProtocol: (...a) => node.dialProtocol(...a),
    unhandle: (...a) => node.unhandle(...a),
    handle: (protocol, handler, options) =>
      node.handle(
        protocol,
        ((stream, connection) => {
          inboundStreams[i] = (inboundStreams[i] as number) + 1
          return (handler as StreamHandler)(stream, connection)
        }) as StreamHandler,
        options,
      ),
  } as PbftHost
}

beforeAll(async () => {
  mesh = await createMesh(N)
  keys = signers(N)
  committee = meshCommittee(keys, mesh)
}, 60_000)
afterAll(async () => {
  await Promise.all(mesh.map((n) => n.stop()))
})

const job = (label: string) => keccak_256(new TextEncoder().encode(label))

/** One job's replicas on the endpoints; resolves with every member's certificate. */
async function decide(muxes: PbftMux[], jobId: Uint8Array, opened?: () => Promise<void>) {
  const replicas: PbftReplica[] = []
  const sessions = muxes.map((mux, i) => {
    const session = mux.open({
      committee,
      jobIds: [jobId],
      onMessage: (from, message) => replicas[i]?.receive(from, message),
    })
    replicas[i] = new PbftReplica({
      domain,
      committee,
      jobId,
      signer: keys[i] as DigicapSigner,
      value: PASS,
      viewTimeout: 60_000,
      send: (to, m) => session.send(to, m),
    })
    return session
  })
  await opened?.()
  await Promise.all(replicas.map((r) => r.start()))
  const certificates = await Promise.all(replicas.map((r) => r.decided))
  for (const c of certificates) verifyCertificate(c, committee, { domain, jobId })
  // Let the last commits land before the sessions close.
  await new Promise((r) => setTimeout(r, 100))
  for (const r of replicas) r.stop()
  await Promise.all(sessions.map((s) => s.stop()))
  return sessions.map((s) => s.stats)
}

describe('createPbftMux on real libp2p nodes', () => {
  it('sends every vote of two decisions on one kept stream per peer, and replaces a stream that died', async () => {
    const muxes = await Promise.all(mesh.map((_, i) => createPbftMux({ node: counting(i) })))
    try {
      const first = await decide(muxes, job('mux-1'))
      const second = await decide(muxes, job('mux-2'))
      const received = [...first, ...second].reduce((n, s) => n + s.received, 0)
      // 2 × 27 votes; a stream per vote would be as many handler calls. One per peer: 3 each.
      expect(received).toBeGreaterThanOrEqual(2 * 24)
      expect(inboundStreams).toEqual([N - 1, N - 1, N - 1, N - 1])
      // Every PBFT stream between the nodes dies (a reset, an idle timeout): the next job's
      // votes go on fresh streams, one per peer again.
      for (const node of mesh) {
        for (const c of node.getConnections()) {
          for (const s of c.streams) if (s.protocol === PBFT_PROTOCOL) s.abort(new Error('cut'))
        }
      }
      const third = await decide(muxes, job('mux-3'))
      expect(third.reduce((n, s) => n + s.received, 0)).toBeGreaterThanOrEqual(24)
      for (const count of inboundStreams) expect(count).toBeLessThanOrEqual(2 * (N - 1))
    } finally {
      await Promise.all(muxes.map((m) => m.stop()))
    }
  }, 60_000)

  it('a member’s frames for a job no session holds are refused before any replica; the real job decides', async () => {
    const refused: string[] = []
    const muxes = await Promise.all(
      mesh.map((node, i) =>
        createPbftMux({
          node,
          ...(i === 0
            ? { onRejected: (e: Error) => refused.push((e as { code?: string }).code ?? '') }
            : {}),
        }),
      ),
    )
    try {
      // Member 1 floods member 0 with signed votes for 200 job ids no one runs, on one stream.
      const bogus = await Promise.all(
        Array.from({ length: 200 }, async (_, k) =>
          encodeFrame(
            encodePbftMessage({
              vote: await signVote(keys[1] as DigicapSigner, domain, {
                phase: 'prepare',
                jobId: job(`bogus-${k}`),
                view: 0n,
                preparedView: 0n,
                ...PASS,
              }),
              proof: [],
            } as PbftMessage),
          ),
        ),
      )
      let stream: Stream | undefined
      // Once member 0 has the real job's session (its committee holds member 1), the flood goes
      // out, ahead of the real votes.
      const stats = await decide(muxes, job('mux-real'), async () => {
        stream = await (mesh[1] as Libp2p).dialProtocol((mesh[0] as Libp2p).peerId, PBFT_PROTOCOL)
        for (const frame of bogus) stream.send(frame)
      })
      await stream?.close()
      await expect
        .poll(() => (muxes[0] as PbftMux).stats.refused['PBFT_VOTE:wrong-job'], { timeout: 15_000 })
        .toBe(200)
      // None reached the session (it counts only its job's 9 votes to member 0).
      expect(stats[0]?.received).toBeLessThanOrEqual(9)
      expect(stats[0]?.refused).toEqual({})
      expect(refused.filter((c) => c === 'PBFT_VOTE')).toHaveLength(200)
    } finally {
      await Promise.all(muxes.map((m) => m.stop()))
    }
  }, 60_000)

  it('refuses a session past maxSessions, and a job id another session holds (PbftBusyError)', async () => {
    const mux = await createPbftMux({ node: mesh[0] as Libp2p, maxSessions: 2 })
    try {
      const noop = () => {}
      const a = mux.open({ committee, jobIds: [job('a')], onMessage: noop })
      expect(() => mux.open({ committee, jobIds: [job('a')], onMessage: noop })).toThrow(
        expect.objectContaining({ code: 'PBFT_BUSY', name: 'PbftBusyError' }),
      )
      expect(() => mux.open({ committee, onMessage: noop })).toThrow(
        expect.objectContaining({ code: 'PBFT_BUSY' }),
      )
      mux.open({ committee, jobIds: [job('b')], onMessage: noop })
      expect(() => mux.open({ committee, jobIds: [job('c')], onMessage: noop })).toThrow(
        expect.objectContaining({
          code: 'PBFT_BUSY',
          details: expect.objectContaining({ maxSessions: 2 }),
        }),
      )
      await a.stop()
      expect(mux.sessions).toBe(1)
      mux.open({ committee, jobIds: [job('c')], onMessage: noop })
      expect(mux.sessions).toBe(2)
    } finally {
      await mux.stop()
    }
  })
})
