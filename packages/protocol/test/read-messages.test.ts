/**
 * `readMessages` on real libp2p streams (TCP + noise + yamux on loopback): many frames on one
 * kept stream, a clean end at a frame boundary, and the ways a stream can go wrong mid-frame
 * (truncated, oversized, stalled), each a typed wire error.
 */
import type { Libp2p, Stream } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { encodeFrame, readMessages, sendMessage } from '../src/index.ts'
import { createPair } from './helpers/nodes.ts'

const PROTOCOL = '/digicap/test-read-messages/1.0.0'
let a: Libp2p
let b: Libp2p
let stop: () => Promise<void>
beforeAll(async () => {
  ;({ a, b, stop } = await createPair())
}, 30_000)
afterAll(async () => stop())

/** Opens a stream to `b` whose handler reads with `readMessages`; resolves with what it read. */
async function exchange(
  write: (stream: Stream) => Promise<void>,
  options: Parameters<typeof readMessages>[1] = {},
): Promise<{ bodies: number[][]; error?: { code: unknown } }> {
  let done!: (r: { bodies: number[][]; error?: { code: unknown } }) => void
  const result = new Promise<{ bodies: number[][]; error?: { code: unknown } }>((r) => {
    done = r
  })
  await b.handle(PROTOCOL, async (stream) => {
    const bodies: number[][] = []
    try {
      for await (const body of readMessages(stream, options)) bodies.push([...body])
      done({ bodies })
    } catch (err) {
      done({ bodies, error: err as { code: unknown } })
    }
  })
  try {
    const stream = await a.dialProtocol(b.peerId, PROTOCOL)
    await write(stream)
    return await result
  } finally {
    await b.unhandle(PROTOCOL)
  }
}

describe('readMessages', () => {
  it('reads 100 frames of one stream in order (and an empty one), then ends cleanly', async () => {
    const { bodies, error } = await exchange(async (s) => {
      for (let i = 0; i < 100; i++) await sendMessage(s, Uint8Array.of(i, i + 1))
      await sendMessage(s, new Uint8Array(0))
      await s.close()
    })
    expect(error).toBeUndefined()
    expect(bodies).toHaveLength(101)
    expect(bodies[42]).toEqual([42, 43])
    expect(bodies[100]).toEqual([])
  })

  it('a stream that ends inside a frame: the frames before it, then WIRE_TRUNCATED', async () => {
    const { bodies, error } = await exchange(async (s) => {
      await sendMessage(s, Uint8Array.of(1))
      s.send(encodeFrame(new Uint8Array(10)).subarray(0, 5))
      await s.close()
    })
    expect(bodies).toEqual([[1]])
    expect(error?.code).toBe('WIRE_TRUNCATED')
  })

  it('a length past maxSize: WIRE_TOO_LARGE before the body is awaited', async () => {
    const { bodies, error } = await exchange(
      async (s) => {
        await sendMessage(s, Uint8Array.of(7))
        s.send(Uint8Array.of(0xff, 0xff, 0x03))
      },
      { maxSize: 1024 },
    )
    expect(bodies).toEqual([[7]])
    expect(error?.code).toBe('WIRE_TOO_LARGE')
  })

  it('a frame started and never finished: WIRE_TIMEOUT after frameTimeout; an idle stream is not cut', async () => {
    const { bodies, error } = await exchange(
      async (s) => {
        await sendMessage(s, Uint8Array.of(1))
        // Idle between frames for longer than frameTimeout: allowed.
        await new Promise((r) => setTimeout(r, 600))
        await sendMessage(s, Uint8Array.of(2))
        s.send(Uint8Array.of(10, 1, 2))
      },
      { frameTimeout: 300 },
    )
    expect(bodies).toEqual([[1], [2]])
    expect(error?.code).toBe('WIRE_TIMEOUT')
  })

  it('builds no abort signal per frame: 200 frames read with one frame-timeout signal (ADR 0053)', async () => {
    // A timeout signal and a composed one per frame were a timer and garbage that lived for
    // frameTimeout after each frame of a kept stream.
    const timeouts = vi.spyOn(AbortSignal, 'timeout')
    const composed = vi.spyOn(AbortSignal, 'any')
    try {
      const { bodies, error } = await exchange(
        async (s) => {
          for (let i = 0; i < 200; i++) await sendMessage(s, Uint8Array.of(i & 0xff))
          await s.close()
        },
        { frameTimeout: 60_000, signal: new AbortController().signal },
      )
      expect(error).toBeUndefined()
      expect(bodies).toHaveLength(200)
      expect(timeouts.mock.calls.length).toBeLessThan(5)
      expect(composed.mock.calls.length).toBeLessThan(5)
    } finally {
      timeouts.mockRestore()
      composed.mockRestore()
    }
  })
})
