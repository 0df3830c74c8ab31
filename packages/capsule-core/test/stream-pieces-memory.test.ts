/**
 * README promise for the streaming opener: "at most about two chunks live", whatever the sizes
 * of the writes. A peer that trickles a chunk in 1-byte pieces (after a genuine header: the
 * bytes are never authenticated until the chunk is whole) once cost one object per byte —
 * ~457 MiB of heap for one 4 MiB chunk. Now small pieces are gathered into a buffer, so the
 * queue is bounded by bytes, not by the number of writes.
 */
import { describe, expect, it } from 'vitest'
import {
  createCapsuleHeader,
  openNodeStream,
  parseCapsuleHeader,
  prepareOpen,
  sealCapsule,
  signCapsuleHeader,
} from '../src/index.ts'
import { ByteQueue } from '../src/payload.ts'
import { BASE, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'

const MiB = 1024 * 1024
const CHUNK = 4 * MiB

function bigCapsule(label: string, size: number): Uint8Array {
  const plaintext = detBytes(label, size)
  const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, plaintext, chunkSize: CHUNK })
  return sealCapsule({
    header,
    signature: signCapsuleHeader(header, OWNER_KEY),
    dataKey: DATA_KEY,
    plaintext,
  })
}

describe('ByteQueue: objects bounded by bytes', () => {
  it('1-byte pushes are gathered: a 4 MiB queue holds ~64 objects, not 4 Mi', () => {
    const q = new ByteQueue()
    const src = detBytes('q', CHUNK)
    for (let i = 0; i < CHUNK; i++) q.push(src.subarray(i, i + 1))
    expect(q.length).toBe(CHUNK)
    expect(q.pieceCount).toBeLessThanOrEqual(2 * (CHUNK / (8 * 1024)) + 2)
    expect(q.pieceCount).toBeLessThan(100)
    // the bytes come out in order, exactly
    const out = Buffer.concat(q.take(CHUNK))
    expect(out.equals(Buffer.from(src))).toBe(true)
    expect(q.length).toBe(0)
  })

  it('mixed small and large pushes keep order through take and peek', () => {
    const q = new ByteQueue()
    const src = detBytes('mix', 300_000)
    const sizes = [1, 3, 9000, 2, 70_000, 5, 5, 40_000, 1, 65_536, 7]
    const pushed: Uint8Array[] = []
    let off = 0
    for (let k = 0; off < src.length; k++) {
      const n = Math.min(sizes[k % sizes.length] as number, src.length - off)
      const piece = src.subarray(off, off + n)
      pushed.push(piece)
      q.push(piece)
      off += n
      if (k % 5 === 4) expect(Buffer.from(q.peek(11)).equals(Buffer.from(src.subarray(0, 11))))
    }
    expect(Buffer.from(q.peek(20)).equals(Buffer.from(src.subarray(0, 20)))).toBe(true)
    const a = Buffer.concat(q.take(12_345))
    const b = Buffer.concat(q.take(q.length))
    expect(Buffer.concat([a, b]).equals(Buffer.from(src))).toBe(true)
    // a piece pushed is never changed by later pushes (the gathering buffer is not aliased)
    expect(Buffer.concat(pushed).equals(Buffer.from(src))).toBe(true)
  })

  it('alternating 1-byte and 8 KiB pushes stay within 2 objects per 8 KiB', () => {
    const q = new ByteQueue()
    const big = new Uint8Array(8 * 1024)
    for (let i = 0; i < 256; i++) {
      q.push(new Uint8Array(1))
      q.push(big)
    }
    expect(q.pieceCount).toBeLessThanOrEqual(2 * Math.ceil(q.length / (8 * 1024)) + 2)
  })
})

describe('the opener fed 1-byte pieces', () => {
  it('prepareOpen().write: 4 Mi one-byte writes of one unauthenticated 4 MiB chunk hold ~bytes of heap', () => {
    const parsed = parseCapsuleHeader(bigCapsule('trickle', CHUNK))
    const opener = prepareOpen(parsed, { dataKey: DATA_KEY })
    const garbage = new Uint8Array(CHUNK) // never authenticated: the chunk is never whole
    const before = process.memoryUsage().heapUsed
    for (let i = 0; i < CHUNK - 1; i++) opener.write(garbage.subarray(i, i + 1))
    const grown = process.memoryUsage().heapUsed - before
    opener.destroy()
    // Before the fix: ~457 MiB (one view object per byte). Now: the bytes in ArrayBuffers.
    expect(grown / MiB).toBeLessThan(64)
  }, 120_000)

  it('openNodeStream: a genuine capsule trickled byte by byte still opens', async () => {
    const capsule = bigCapsule('trickle-ok', 100_000)
    const t = openNodeStream({ dataKey: DATA_KEY })
    const parts: Buffer[] = []
    t.on('data', (d: Buffer) => parts.push(d))
    const done = new Promise<void>((resolve, reject) => {
      t.on('end', resolve)
      t.on('error', reject)
    })
    for (let i = 0; i < capsule.length; i++) t.write(capsule.subarray(i, i + 1))
    t.end()
    await done
    expect(Buffer.concat(parts).equals(Buffer.from(detBytes('trickle-ok', 100_000)))).toBe(true)
  }, 120_000)
})
