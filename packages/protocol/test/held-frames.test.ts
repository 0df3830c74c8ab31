/**
 * A peer that opens streams, sends half a length-prefixed frame and holds it: `handle` bounds
 * how many such streams one peer (and all peers) may keep being read, and drops each at the
 * read deadline, while a whole request from the same connection is still answered.
 */
import type { DigicapError } from '@digicap/capsule-core'
import type { Libp2p, Stream } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeFrame, encodeVarint } from '../src/frame.ts'
import {
  handle,
  type KeyRelease,
  keyReleaseProtocol,
  type ReleaseAck,
  readMessage,
  request,
  type WireProtocol,
} from '../src/index.ts'
import { createNode, createPair } from './helpers/nodes.ts'

const heldProtocol: WireProtocol<KeyRelease, ReleaseAck> = {
  ...keyReleaseProtocol,
  id: '/digicap-test/held/1.0.0',
}

const cappedProtocol: WireProtocol<KeyRelease, ReleaseAck> = {
  ...keyReleaseProtocol,
  id: '/digicap-test/capped/1.0.0',
}

const slowProtocol: WireProtocol<KeyRelease, ReleaseAck> = {
  ...keyReleaseProtocol,
  id: '/digicap-test/slow/1.0.0',
}

let a: Libp2p
let b: Libp2p
let trusted: Libp2p
let stop: () => Promise<void>
const errors: DigicapError[] = []

beforeAll(async () => {
  ;({ a, b, stop } = await createPair())
  trusted = await createNode()
  await trusted.dial(b.getMultiaddrs())
  await handle(b, cappedProtocol, (r): ReleaseAck => ({ grantId: r.grantId, status: 'ok' }), {
    readTimeout: 5000,
    maxReading: 2,
    isTrustedPeer: (peer) => peer.equals(trusted.peerId),
    onError: (err) => errors.push(err),
  })
  await handle(b, slowProtocol, (r): ReleaseAck => ({ grantId: r.grantId, status: 'ok' }), {
    timeout: 10_000,
    readTimeout: 300,
    isTrustedPeer: (peer) => peer.equals(trusted.peerId),
    onError: (err) => errors.push(err),
  })
  await handle(b, heldProtocol, (r): ReleaseAck => ({ grantId: r.grantId, status: 'ok' }), {
    timeout: 10_000,
    readTimeout: 600,
    maxReadingPerPeer: 3,
    onError: (err) => errors.push(err),
  })
})

afterAll(async () => {
  await trusted?.stop()
  await stop()
})

/** Opens a stream and sends a length prefix for 60 000 bytes plus 30 000 of them. */
async function holdHalfFrame(protocol = heldProtocol.id): Promise<Stream> {
  const stream = await a.dialProtocol(b.peerId, protocol)
  try {
    stream.send(encodeVarint(60_000))
    stream.send(new Uint8Array(30_000))
  } catch {
    // Already aborted by the responder (over the cap).
  }
  return stream
}

const closed = (s: Stream): Promise<void> =>
  new Promise((resolve) => {
    if (s.status !== 'open') resolve()
    else s.addEventListener('close', () => resolve(), { once: true })
  })

describe('held half-frames', () => {
  it('aborts streams beyond the per-peer read cap at once and the held ones at the read deadline', async () => {
    const held = await Promise.all([holdHalfFrame(), holdHalfFrame(), holdHalfFrame()])
    await new Promise((r) => setTimeout(r, 100))
    const extra = await holdHalfFrame()
    const t0 = performance.now()
    await closed(extra)
    expect(performance.now() - t0).toBeLessThan(500)
    expect(errors.some((e) => e.details.reason === 'too-many-reading')).toBe(true)
    // The three held streams are dropped at the 600 ms read deadline, not the 10 s exchange limit.
    await Promise.all(held.map(closed))
    expect(performance.now() - t0).toBeLessThan(3000)
    expect(errors.filter((e) => e.code === 'WIRE_TIMEOUT').length).toBeGreaterThanOrEqual(3)
    // Slots are free again: a whole request is answered.
    const grantId = new Uint8Array(32).fill(7)
    const ack = await request(
      a,
      b.peerId,
      heldProtocol,
      { grantId, capsuleId: new Uint8Array(32), hpke: new Uint8Array(80), fastPath: false },
      { timeout: 5000 },
    )
    expect(ack.status).toBe('ok')
  })

  it('a global read cap shuts out strangers beyond it, never a trusted peer', async () => {
    const held = [await holdHalfFrame(cappedProtocol.id), await holdHalfFrame(cappedProtocol.id)]
    await new Promise((r) => setTimeout(r, 100))
    const extra = await holdHalfFrame(cappedProtocol.id)
    await closed(extra)
    const release = {
      grantId: new Uint8Array(32).fill(9),
      capsuleId: new Uint8Array(32),
      hpke: new Uint8Array(80),
      fastPath: false,
    }
    const ack = await request(trusted, b.peerId, cappedProtocol, release, { timeout: 5000 })
    expect(ack.status).toBe('ok')
    for (const s of held) s.abort(new Error('test done'))
  })

  it('gives a trusted peer the whole exchange time for its frame, a stranger only the read deadline', async () => {
    const release = {
      grantId: new Uint8Array(32).fill(5),
      capsuleId: new Uint8Array(32),
      hpke: new Uint8Array(80),
      fastPath: false,
    }
    const frame = encodeFrame(slowProtocol.encodeRequest(release))
    // Half the frame, then the rest 900 ms later: three read deadlines of 300 ms.
    const slowly = async (from: Libp2p): Promise<ReleaseAck> => {
      const stream = await from.dialProtocol(b.peerId, slowProtocol.id)
      stream.send(frame.subarray(0, 10))
      await new Promise((r) => setTimeout(r, 900))
      stream.send(frame.subarray(10))
      return slowProtocol.decodeResponse(
        await readMessage(stream, { signal: AbortSignal.timeout(5000) }),
      )
    }
    expect((await slowly(trusted)).status).toBe('ok')
    await expect(slowly(a)).rejects.toThrow()
  })
})
