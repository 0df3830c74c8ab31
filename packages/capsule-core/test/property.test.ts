import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  CAPSULE_MAGIC,
  createCapsuleHeader,
  DigicapError,
  openCapsule,
  openStream,
  sealCapsule,
  sealStream,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, build, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const REJECT_CODES = [
  'CAPSULE_FORMAT',
  'CAPSULE_VERSION',
  'CAPSULE_TRUNCATED',
  'CAPSULE_INTEGRITY',
  'CAPSULE_SIGNATURE',
  'CAPSULE_KEY',
  'CAPSULE_LIMIT',
]

function codeOf(fn: () => unknown): string {
  try {
    fn()
    return 'ACCEPTED'
  } catch (err) {
    if (!(err instanceof DigicapError)) throw err
    return err.code
  }
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const out: Uint8Array[] = []
  await stream.pipeTo(new WritableStream({ write: (c) => void out.push(c) }))
  return new Uint8Array(Buffer.concat(out))
}

function split(bytes: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = []
  let off = 0
  for (let i = 0; off < bytes.length; i++) {
    const n = sizes[i % sizes.length] as number
    out.push(bytes.subarray(off, off + n))
    off += n
  }
  return out
}

describe('properties', () => {
  it('round-trips any size and chunk size, buffers and streams alike', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 0, maxLength: 1500 }),
        fc.constantFrom(64, 128, 256, 512, 1024),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 5 }),
        async (plaintext, chunkSize, sizes) => {
          const header = createCapsuleHeader({ ...BASE, chunkSize, dataKey: DATA_KEY, plaintext })
          const params = {
            header,
            signature: signCapsuleHeader(header, OWNER_KEY),
            dataKey: DATA_KEY,
          }
          const capsule = sealCapsule({ ...params, plaintext })
          expect(hex(openCapsule(capsule, { dataKey: DATA_KEY }).plaintext)).toBe(hex(plaintext))
          const streamed = await collect(
            ReadableStream.from(split(plaintext, sizes)).pipeThrough(sealStream(params)),
          )
          expect(hex(streamed)).toBe(hex(capsule))
          const opened = await collect(
            ReadableStream.from(split(capsule, sizes)).pipeThrough(
              openStream({ dataKey: DATA_KEY }),
            ),
          )
          expect(hex(opened)).toBe(hex(plaintext))
        },
      ),
      { numRuns: 40 },
    )
  })

  const fixed = build(detBytes('property', 4 * 64 + 10), 64).capsule

  it('rejects any single byte change anywhere with a capsule error', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: fixed.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        (at, mask) => {
          const t = fixed.slice()
          t[at] = (t[at] as number) ^ mask
          expect(REJECT_CODES).toContain(codeOf(() => openCapsule(t, { dataKey: DATA_KEY })))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('rejects every truncation with CAPSULE_TRUNCATED, buffer and stream', async () => {
    for (let len = 0; len < fixed.length; len++) {
      expect(
        codeOf(() => openCapsule(fixed.subarray(0, len), { dataKey: DATA_KEY })),
        `length ${len}`,
      ).toBe('CAPSULE_TRUNCATED')
    }
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: fixed.length - 1 }), async (len) => {
        const p = collect(
          ReadableStream.from([fixed.subarray(0, len)]).pipeThrough(
            openStream({ dataKey: DATA_KEY }),
          ),
        )
        await expect(p).rejects.toMatchObject({ code: 'CAPSULE_TRUNCATED' })
      }),
      { numRuns: 60 },
    )
  })

  it('any bytes after a valid preamble fail with a typed error, never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), (body) => {
        const bytes = new Uint8Array(12 + body.length)
        bytes.set(CAPSULE_MAGIC)
        bytes[7] = 1
        new DataView(bytes.buffer).setUint32(8, Math.max(1, body.length - 65), false)
        bytes.set(body, 12)
        expect(REJECT_CODES).toContain(codeOf(() => openCapsule(bytes, { dataKey: DATA_KEY })))
      }),
      { numRuns: 300 },
    )
  })

  it('arbitrary input fails with a typed error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(REJECT_CODES).toContain(codeOf(() => openCapsule(bytes, { dataKey: DATA_KEY })))
      }),
      { numRuns: 200 },
    )
  })
})
