/**
 * Votes lost with their stream (ADR 0054), on real libp2p nodes on loopback, n = 4 with f = 1
 * member silent, so every other vote is needed. Fault injection on one honest member's outgoing
 * streams only: a frame whose tail arrives after the receiver's frame timeout (the receiver ends
 * the stream, ADR 0054 "(b)"), and a stream aborted with a frame in its write buffer (libp2p's
 * abort discards it, ADR 0054 "(a)"). In both the transport counted the frame as sent; with no
 * re-send the committee waited for the view-change timeout (120 s here) or, for a member that
 * missed a commit after the others decided, for ever.
 */
import type { DigicapSigner } from '@digicap/capsule-core'
import { decodePbftMessage, type PbftMessage, type PbftPhase } from '@digicap/protocol'
import type { Connection, Libp2p, Stream, StreamHandler } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  createPbftMux,
  createPbftNode,
  type PbftCommittee,
  type PbftHost,
  type PbftNode,
  signVote,
  verifyCertificate,
} from '../src/index.ts'
import { createMesh, domain, meshCommittee, PASS, signers } from './pbft-fixtures.ts'

const N = 4
/** No view change can rescue a lost vote within a test. */
const VIEW_TIMEOUT = 120_000
/** The transport's frame and send timeout: a stalled frame is cut off after it. */
const FRAME_TIMEOUT = 1000
const RESEND_AFTER = 1500
/** Far less than the view timeout, far more than a loaded box needs for n = 4. */
const DECIDE_WITHIN = 40_000

let mesh: Libp2p[] = []
let keys: DigicapSigner[]
let committee: PbftCommittee
let members: PbftNode[] = []

beforeAll(async () => {
  mesh = await createMesh(N)
  keys = signers(N)
  committee = meshCommittee(keys, mesh)
}, 60_000)
afterEach(async () => {
  await Promise.all(members.map((m) => m.stop()))
  members = []
})
afterAll(async () => {
  await Promise.all(mesh.map((n) => n.stop()))
})

/** Decides what happens to one outgoing frame; true = handled (counted as sent by the caller). */
type Tamper = (to: string, phase: PbftPhase, frame: Uint8Array, stream: Stream) => boolean

/** The phase of a length-prefixed PBFT frame. */
function phaseOf(frame: Uint8Array): PbftPhase {
  let at = 0
  while (((frame[at] as number) & 0x80) !== 0) at++
  return decodePbftMessage(frame.subarray(at + 1)).vote.phase
}

/** Forwards every property of `target`, methods bound to it, except `overrides`. */
function forward<T extends object>(target: T, overrides: Partial<Record<keyof T, unknown>>): T {
  return new Proxy(target, {
    get(t, key) {
      if (key in overrides) return overrides[key as keyof T]
      const value = Reflect.get(t, key)
      return typeof value === 'function' ? value.bind(t) : value
    },
  })
}

/** The node, with its outgoing PBFT streams' frames passed through `tamper`. */
function tampering(node: Libp2p, tamper: Tamper): PbftHost {
  const wrapStream = (stream: Stream, to: string): Stream =>
    forward(stream, {
      send: (frame: Uint8Array) => tamper(to, phaseOf(frame), frame, stream) || stream.send(frame),
    })
  const wrapConnection = (c: Connection): Connection =>
    forward(c, {
      newStream: async (...a: Parameters<Connection['newStream']>) =>
        wrapStream(await c.newStream(...a), c.remotePeer.toString()),
    })
  return forward(node, {
    getConnections: (...a: Parameters<Libp2p['getConnections']>) =>
      node.getConnections(...a).map(wrapConnection),
  }) as PbftHost
}

/** The members but `silent`, member `faulty` on a tampering host; started. */
async function start(label: string, silent: number, faulty: number, tamper: Tamper) {
  const jobId = keccak_256(new TextEncoder().encode(label))
  const active: PbftNode[] = []
  for (let i = 0; i < N; i++) {
    if (i === silent) continue
    const libp2p = mesh[i] as Libp2p
    const node = await createPbftNode({
      node: i === faulty ? tampering(libp2p, tamper) : libp2p,
      committee,
      domain,
      jobId,
      signer: keys[i] as DigicapSigner,
      value: PASS,
      viewTimeout: VIEW_TIMEOUT,
      resendAfter: RESEND_AFTER,
      transport: { timeout: FRAME_TIMEOUT },
    })
    members.push(node)
    active.push(node)
  }
  await Promise.all(active.map((m) => m.start()))
  return { jobId, active }
}

/** Every member of `active` decides within DECIDE_WITHIN, in view 0, a valid certificate. */
async function allDecide(active: PbftNode[], jobId: Uint8Array): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no decision: a lost vote stalled')), DECIDE_WITHIN)
  })
  try {
    const certificates = await Promise.race([Promise.all(active.map((m) => m.decided)), late])
    for (const c of certificates) verifyCertificate(c, committee, { domain, jobId })
    for (const m of active) expect(m.replica.view).toBe(0n)
  } finally {
    clearTimeout(timer)
  }
}

const peer = (i: number) => committee.members[i]?.peerId as string

describe('PBFT votes lost with their stream', () => {
  it('a frame that stalls past the frame timeout: the receiver ends the stream, the vote is re-sent', async () => {
    // Member 0 leads view 0; member 3 is silent; member 1's first prepare to member 2 arrives
    // as one byte, the rest after three frame timeouts. Member 2 then lacks a prepare, never
    // commits, and members 0 and 1 lack its commit: nobody decides without a re-send.
    let stalled = 0
    const { jobId, active } = await start('lost-stalled-frame', 3, 1, (to, phase, frame, s) => {
      if (to !== peer(2) || phase !== 'prepare' || stalled++ > 0) return false
      s.send(frame.subarray(0, 1))
      setTimeout(() => {
        try {
          s.send(frame.subarray(1))
        } catch {
          // The receiver has reset the stream: the tail goes nowhere.
        }
      }, 3 * FRAME_TIMEOUT)
      return true
    })
    await allDecide(active, jobId)
    expect(stalled).toBeGreaterThan(0)
    // The receiver did cut the stream on the stalled frame (the loss is the one described).
    expect(active[2]?.transport.stats.refused.WIRE_TIMEOUT).toBe(1)
  }, 60_000)

  it('a stream aborted with a frame in its buffer: a member that decided answers the laggard', async () => {
    // Member 0's commit to member 2 is lost with its stream (one byte out, then abort). Members
    // 0 and 1 decide on the commits of 0, 1 and 2 and stop their timers; member 2 holds two
    // commits and needs member 0's: its re-sent commit makes members 0 and 1 answer with theirs.
    let dropped = 0
    const { jobId, active } = await start('lost-aborted-stream', 3, 0, (to, phase, frame, s) => {
      if (to !== peer(2) || phase !== 'commit' || dropped++ > 0) return false
      s.send(frame.subarray(0, 1))
      s.abort(new Error('dropped with a frame in the buffer'))
      return true
    })
    await allDecide(active, jobId)
    expect(dropped).toBeGreaterThan(0)
    // Member 2's re-sent votes reached the members that decided, as copies.
    expect(active[0]?.transport.stats.refused['PBFT_VOTE:replayed']).toBeGreaterThan(0)
  }, 60_000)
})

describe('a member that opens its round after the others decided (ADR 0056)', () => {
  it('decides by PBFT: the decided members answer its later-view votes with their decided view', async () => {
    // Members 0, 1 and 2 decide view 0 while member 3's endpoint has another job's round open
    // only: their votes reach it and are refused as `wrong-job` (the verifier-node CI hang: a
    // member whose session opened 22 ms after the others decided).
    const refusing = await createPbftMux({ node: mesh[3] as Libp2p, timeout: FRAME_TIMEOUT })
    refusing.open({
      committee,
      jobIds: [keccak_256(new TextEncoder().encode('another job'))],
      onMessage: () => {},
    })
    const { jobId, active } = await start('late-member', 3, -1, () => false)
    try {
      await allDecide(active, jobId)
      await expect
        .poll(() => refusing.stats.refused['PBFT_VOTE:wrong-job'] ?? 0, { timeout: 10_000 })
        .toBeGreaterThanOrEqual(3)
    } finally {
      await refusing.stop()
    }
    // Member 3 opens its round now. Nobody re-sends on a timer after deciding; its view timer
    // expires and it asks for view 1; the decided members answer with their view-0 votes.
    const late = await createPbftNode({
      node: mesh[3] as Libp2p,
      committee,
      domain,
      jobId,
      signer: keys[3] as DigicapSigner,
      value: PASS,
      viewTimeout: 300,
      resendAfter: RESEND_AFTER,
      transport: { timeout: FRAME_TIMEOUT },
    })
    members.push(late)
    await late.start()
    let timer: ReturnType<typeof setTimeout> | undefined
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the late member never decided')), 20_000)
    })
    try {
      const certificate = await Promise.race([late.decided, stalled])
      verifyCertificate(certificate, committee, { domain, jobId })
      // The decision of the others (view 0), not a new one in a view of its own.
      expect(certificate.view).toBe(0n)
      expect(certificate.verdict).toBe(PASS.verdict)
    } finally {
      clearTimeout(timer)
    }
  }, 60_000)
})

/** The node, its inbound PBFT streams paused (not read) while `reading.paused` is set. */
function pausable(node: Libp2p) {
  const streams = new Set<Stream>()
  let paused = false
  const each = (f: (s: Stream) => void) => {
    for (const s of streams) if (s.status === 'open') f(s)
  }
  const host = forward(node, {
    handle: (...[protocol, handler, options]: Parameters<Libp2p['handle']>) =>
      node.handle(
        protocol,
        ((stream, connection) => {
          streams.add(stream)
          if (paused) stream.pause()
          return (handler as StreamHandler)(stream, connection)
        }) as StreamHandler,
        options,
      ),
  }) as PbftHost
  return {
    host,
    pause() {
      paused = true
      each((s) => s.pause())
    },
    resume() {
      paused = false
      each((s) => s.resume())
    },
  }
}

describe('a member that stops reading (ADR 0054 "(a)")', () => {
  it('costs no vote below the yamux window; past it the reader no longer cuts the stream (ADR 0088)', async () => {
    // Member 1 stops reading. Member 0 sends it a decision's worth of votes (100 frames, ~20
    // KiB): they fit in yamux's 256 KiB stream window, nothing waits. Then 40 frames of 64 proof
    // entries each (~480 KiB). Before ADR 0088 frames counted as sent were lost here: on resume
    // the reader got what had waited at once, past its one-frame buffer, and aborted the stream
    // (WIRE_TOO_LARGE). Now it takes them all; only a sender that waits for a drain past its
    // timeout still gives up (it drops the frame and aborts the stream, ADR 0054).
    const jobId = keccak_256(new TextEncoder().encode('paused-reader'))
    const reader = pausable(mesh[1] as Libp2p)
    const [sending, reading] = await Promise.all([
      createPbftMux({ node: mesh[0] as Libp2p, timeout: FRAME_TIMEOUT, maxQueue: 256 }),
      createPbftMux({ node: reader.host }),
    ])
    try {
      let received = 0
      const out = sending.open({ committee, jobIds: [jobId], onMessage: () => {} })
      const inbound = reading.open({ committee, jobIds: [jobId], onMessage: () => void received++ })
      const vote = await signVote(keys[0] as DigicapSigner, domain, {
        phase: 'prepare',
        jobId,
        view: 0n,
        preparedView: 0n,
        ...PASS,
      })
      const to = committee.members[1]
      out.send(to, { vote, proof: [] }) // opens the kept stream
      await expect.poll(() => received, { timeout: 30_000 }).toBe(1)
      /** Sends `count` copies of `message` while member 1 does not read; then it reads again. */
      const whilePaused = async (count: number, message: PbftMessage) => {
        const before = out.stats.sent + out.stats.dropped
        reader.pause()
        for (let i = 0; i < count; i++) out.send(to, message)
        await expect
          .poll(() => out.stats.sent + out.stats.dropped - before, { timeout: 60_000 })
          .toBe(count)
        await new Promise((r) => setTimeout(r, 2 * FRAME_TIMEOUT))
        reader.resume()
        await new Promise((r) => setTimeout(r, 2 * FRAME_TIMEOUT))
      }
      await whilePaused(100, { vote, proof: [] })
      expect(received).toBe(101) // a decision's votes fit in the window: none lost
      await whilePaused(40, { vote, proof: Array.from({ length: 64 }, () => vote) })
      // The reader cut no stream for what waited in it.
      expect(inbound.stats.refused.WIRE_TOO_LARGE).toBeUndefined()
      // Measured here: the sender's window (grown by yamux) held all 40, none dropped, all read.
      if (out.stats.dropped === 0) expect(received).toBe(141)
    } finally {
      await Promise.all([sending.stop(), reading.stop()])
    }
  }, 120_000)
})
