/**
 * Differential fuzz of `openFile` against the in-memory `openCapsule`: damaged capsule files
 * (chunks dropped, swapped, duplicated, flipped, the file cut short) must give the same
 * result on the file path, with and without lanes, as in memory — the same plaintext or the
 * same typed error — and nothing may be left running behind the rejection: a read still in
 * flight when the file handle closes rejects with EBADF, and an unhandled rejection kills
 * the host process. A trap on `unhandledRejection` must see none.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  commitPlaintextFile,
  createCapsuleHeader,
  openCapsule,
  openFile,
  sealFile,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, CAPSULE_ID, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-open-fuzz-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const CHUNK = 256
const TAG = 16

/** Every unhandled rejection seen while a test runs. */
let unhandled: unknown[] = []
const trap = (reason: unknown) => unhandled.push(reason)
beforeEach(() => {
  unhandled = []
  process.on('unhandledRejection', trap)
})
afterEach(() => {
  process.off('unhandledRejection', trap)
})

/** Lets a read that nothing awaits settle, and its rejection (if any) reach the trap. */
const drain = async () => {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 2))
}

/** A sealed capsule file of `size` bytes of plaintext, its bytes and its chunk layout. */
async function sealed(size: number) {
  const plaintext = detBytes(`fuzz ${size}`, size)
  const input = join(tmp, `plain-${size}.bin`)
  writeFileSync(input, plaintext)
  const commitment = await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID, { chunkSize: CHUNK })
  const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, commitment })
  const output = join(tmp, `sealed-${size}.capsule`)
  await sealFile({
    header,
    signature: signCapsuleHeader(header, OWNER_KEY),
    dataKey: DATA_KEY,
    input,
    output,
  })
  const bytes = new Uint8Array(readFileSync(output))
  const n = Math.max(1, Math.ceil(size / CHUNK))
  const payloadOffset = bytes.length - size - n * TAG
  /** The capsule's chunks (with their tags), in order. */
  const chunks = Array.from({ length: n }, (_, i) =>
    bytes.subarray(
      payloadOffset + i * (CHUNK + TAG),
      Math.min(bytes.length, payloadOffset + (i + 1) * (CHUNK + TAG)),
    ),
  )
  return { plaintext, bytes, prefix: bytes.subarray(0, payloadOffset), chunks }
}

type Damage =
  | { kind: 'drop'; at: number }
  | { kind: 'swap'; at: number; with: number }
  | { kind: 'dup'; at: number }
  | { kind: 'flip'; at: number; byte: number }
  | { kind: 'cut'; keep: number }

/** Applies `damage` in order; positions are taken modulo the current chunk count or length. */
function damaged(prefix: Uint8Array, chunks: Uint8Array[], damage: Damage[]): Uint8Array {
  let cs: Uint8Array[] = chunks.map((c) => Uint8Array.from(c))
  let cut: number | undefined
  for (const d of damage) {
    if (cs.length === 0) break
    const i = d.kind === 'cut' ? 0 : d.at % cs.length
    if (d.kind === 'drop') cs.splice(i, 1)
    else if (d.kind === 'dup') cs.splice(i, 0, Uint8Array.from(cs[i] as Uint8Array))
    else if (d.kind === 'swap') {
      const j = d.with % cs.length
      ;[cs[i], cs[j]] = [cs[j] as Uint8Array, cs[i] as Uint8Array]
    } else if (d.kind === 'flip') {
      const c = cs[i] as Uint8Array
      c[d.byte % c.length] = (c[d.byte % c.length] as number) ^ 0x20
    } else cut = d.keep
    cs = [...cs]
  }
  const all = Buffer.concat([prefix, ...cs])
  const end =
    cut === undefined ? all.length : prefix.length + (cut % (all.length - prefix.length + 1))
  return new Uint8Array(all.subarray(0, end))
}

/** A result compared across the paths: the plaintext's hex or the error's code and details. */
function outcome(run: () => Uint8Array): unknown {
  try {
    return { plaintext: Buffer.from(run()).toString('hex') }
  } catch (err) {
    const e = err as { code?: unknown; details?: unknown }
    return { code: e.code, details: e.details }
  }
}

async function outcomeAsync(run: () => Promise<Uint8Array>): Promise<unknown> {
  try {
    return { plaintext: Buffer.from(await run()).toString('hex') }
  } catch (err) {
    const e = err as { code?: unknown; details?: unknown }
    return { code: e.code, details: e.details }
  }
}

/** openFile on `bytes` with `threads`, as an outcome; no output or partial file is left behind. */
async function fileOutcome(bytes: Uint8Array, threads: number): Promise<unknown> {
  const input = join(tmp, 'case.capsule')
  const output = join(tmp, `case-${threads}.out`)
  writeFileSync(input, bytes)
  const result = await outcomeAsync(async () => {
    await openFile({ input, output, dataKey: DATA_KEY, threads })
    const plain = new Uint8Array(readFileSync(output))
    rmSync(output)
    return plain
  })
  await drain()
  expect(readdirSync(tmp).filter((f) => f.includes('.partial') || f.endsWith('.out'))).toEqual([])
  return result
}

const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), at: fc.nat(40) }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(40), with: fc.nat(40) }),
  fc.record({ kind: fc.constant('dup' as const), at: fc.nat(40) }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(40), byte: fc.nat(300) }),
  fc.record({ kind: fc.constant('cut' as const), keep: fc.nat(20_000) }),
)

describe('openFile against openCapsule on damaged files', () => {
  it('the third chunk from the end cut out: a typed error and no unhandled rejection', async () => {
    const { prefix, chunks } = await sealed(12 * CHUNK + 7)
    const bytes = damaged(prefix, chunks, [{ kind: 'drop', at: chunks.length - 3 }])
    const want = outcome(() => openCapsule(bytes, { dataKey: DATA_KEY }).plaintext)
    expect(want).toMatchObject({ code: expect.stringMatching(/^CAPSULE_/) })
    for (const threads of [1, 2])
      expect(await fileOutcome(bytes, threads), String(threads)).toEqual(want)
    expect(unhandled).toEqual([])
  })

  it('a corrupted chunk followed by a short read (a partial download)', async () => {
    const { prefix, chunks } = await sealed(12 * CHUNK + 7)
    const bytes = damaged(prefix, chunks, [
      { kind: 'flip', at: 5, byte: 9 },
      { kind: 'cut', keep: 6 * (CHUNK + TAG) + 100 },
    ])
    const want = outcome(() => openCapsule(bytes, { dataKey: DATA_KEY }).plaintext)
    expect(want).toMatchObject({ code: expect.stringMatching(/^CAPSULE_/) })
    for (const threads of [1, 2])
      expect(await fileOutcome(bytes, threads), String(threads)).toEqual(want)
    expect(unhandled).toEqual([])
  })

  it('drops, swaps, duplicates, flips and cuts: same outcome on every path (property)', async () => {
    const sizes = [0, 1, CHUNK, 3 * CHUNK + 1, 12 * CHUNK + 7]
    const capsules = await Promise.all(sizes.map((size) => sealed(size)))
    await fc.assert(
      fc.asyncProperty(
        fc.nat(sizes.length - 1),
        fc.array(damageArb, { minLength: 0, maxLength: 3 }),
        async (which, damage) => {
          const { prefix, chunks } = capsules[which] as Awaited<ReturnType<typeof sealed>>
          const bytes = damaged(prefix, chunks, damage)
          const want = outcome(() => openCapsule(bytes, { dataKey: DATA_KEY }).plaintext)
          for (const threads of [1, 2])
            expect(await fileOutcome(bytes, threads), `threads ${threads}`).toEqual(want)
          expect(unhandled).toEqual([])
        },
      ),
      { numRuns: 60 },
    )
    expect(unhandled).toEqual([])
  })
})
