/**
 * `sendMessage` waits while the peer does not read, every time, not only before the stream's
 * first drain (`@libp2p/utils` 7.4's `onDrain()` hands out its first, settled promise again).
 * Real js-libp2p 3 nodes on loopback; the reader stops reading after 2 MiB.
 */
import type { Stream } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sendMessage } from '../src/index.ts'
import { createPair } from './helpers/nodes.ts'

const PROTOCOL = '/digicap-test/slow-reader/1.0.0'
const KiB = 1024
const MiB = 1024 * KiB
const BODY = 60 * KiB

describe('sendMessage against a peer that stops reading', () => {
  let pair: Awaited<ReturnType<typeof createPair>>
  let stopped: () => void
  const held: Stream[] = []
  beforeAll(async () => {
    pair = await createPair()
    const readerStopped = new Promise<void>((resolve) => {
      stopped = resolve
    })
    await pair.b.handle(PROTOCOL, async (stream) => {
      held.push(stream)
      let read = 0
      // reads 2 MiB (the stream's window grows and drains many times), then nothing more
      for await (const chunk of stream) {
        read += chunk.byteLength
        if (read >= 2 * MiB) break
      }
      stopped()
      await readerStopped
    })
  })
  afterAll(async () => {
    for (const stream of held) stream.abort(new Error('test over'))
    await pair.stop()
  })

  it('stops taking messages once the windows and buffers are full, after earlier drains', async () => {
    const stream = await pair.a.dialProtocol(pair.b.peerId, PROTOCOL)
    const body = new Uint8Array(BODY).fill(7)
    let sent = 0
    let blocked = false
    // 2,000 messages would be 117 MiB: far past any window and socket buffer
    for (let i = 0; i < 2_000; i++) {
      const signal = AbortSignal.timeout(1_000)
      try {
        await sendMessage(stream, body, { maxSize: 64 * KiB, signal })
      } catch {
        blocked = true
        break
      }
      sent += BODY
    }
    expect(blocked).toBe(true)
    // what the reader read, yamux's largest window (16 MiB) and the two sockets' buffers
    expect(sent).toBeGreaterThan(2 * MiB)
    expect(sent).toBeLessThan(32 * MiB)
    // and this side holds at most the frame it was writing
    expect(stream.writeBufferLength).toBeLessThanOrEqual(BODY + 16)
  }, 30_000)
})
