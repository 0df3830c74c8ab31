/**
 * The file helpers' parallel lanes (worker threads processing whole chunks in place). These
 * tests force the lanes on small files (many small chunks) and check that they produce the
 * same bytes as the buffer path and accept and reject exactly what the single-thread path
 * does, with the same error codes and reasons.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { laneFaults } from '../src/file/lanes.ts'
import {
  type CapsuleHeader,
  commitAndSealFile,
  commitPlaintextFile,
  createCapsuleHeader,
  createPlaintextCommitment,
  openFile,
  type PlaintextCommitment,
  sealCapsule,
  sealFile,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, CAPSULE_ID, DATA_KEY, detBytes, OWNER_KEY, WRONG_KEY } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-parallel-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const CHUNK = 1024
const plaintext = detBytes('parallel lanes', 37 * CHUNK + 11)
const input = join(tmp, 'plain.bin')
writeFileSync(input, plaintext)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** Lanes forced on (2 threads whatever the size) and the calling thread alone. */
const MODES = ['parallel', 'sequential'] as const
type Mode = (typeof MODES)[number]
const threads = (mode: Mode) => (mode === 'parallel' ? 2 : 1)

/** Seals `input` under a header whose commitment is `commitment`, with the lanes or without. */
async function seal(
  name: string,
  commitment: PlaintextCommitment,
  mode: Mode = 'parallel',
): Promise<string> {
  const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, commitment })
  const output = join(tmp, name)
  await sealFile({
    header,
    signature: signCapsuleHeader(header, OWNER_KEY),
    dataKey: DATA_KEY,
    input,
    output,
    threads: threads(mode),
  })
  return output
}

const commitment = () =>
  commitPlaintextFile(input, DATA_KEY, CAPSULE_ID, { chunkSize: CHUNK, threads: 2 })

/** A capsule whose chunks all authenticate but whose header commits to other content. */
async function sealForeignCommitment(): Promise<string> {
  const c = createPlaintextCommitment(DATA_KEY, CAPSULE_ID, CHUNK)
  const other = plaintext.slice()
  other[other.length - 1] = (other[other.length - 1] as number) ^ 1
  c.update(other)
  return seal('foreign.capsule', c.digest())
}

describe('commitPlaintextFile on lanes', () => {
  it.each([
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    5 * CHUNK,
    37 * CHUNK + 11,
  ])('%i bytes: equals the in-memory commitment, in both modes', async (n) => {
    const data = detBytes(`commit ${n}`, n)
    const path = join(tmp, `commit-${n}.bin`)
    writeFileSync(path, data)
    const c = createPlaintextCommitment(DATA_KEY, CAPSULE_ID, CHUNK)
    c.update(data)
    const want = c.digest()
    for (const mode of MODES) {
      const got = await commitPlaintextFile(path, DATA_KEY, CAPSULE_ID, {
        chunkSize: CHUNK,
        threads: threads(mode),
      })
      expect(got.plaintextSize, mode).toBe(n)
      expect(got.chunkSize, mode).toBe(CHUNK)
      expect(hex(got.plaintextCommitment), mode).toBe(hex(want.plaintextCommitment))
    }
    rmSync(path)
  })

  it('reports progress in chunk order up to the file size', async () => {
    const seen: number[] = []
    await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID, {
      chunkSize: CHUNK,
      onProgress: (n) => seen.push(n),
      threads: 2,
    })
    expect(seen.length).toBeGreaterThan(0)
    expect([...seen].sort((a, b) => a - b)).toEqual(seen)
    expect(seen.at(-1)).toBe(plaintext.length)
  })

  it('any lane count gives the same commitment; a bad count is a typed error', async () => {
    const want = await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID, {
      chunkSize: CHUNK,
      threads: 1,
    })
    for (const threads of [2, 3, 4, 9]) {
      const got = await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID, {
        chunkSize: CHUNK,
        threads,
      })
      expect(hex(got.plaintextCommitment), String(threads)).toBe(hex(want.plaintextCommitment))
    }
    for (const threads of [0, -1, 1.5, Number.NaN]) {
      await expect(
        commitPlaintextFile(input, DATA_KEY, CAPSULE_ID, { threads }),
        String(threads),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    }
  })

  it('a commitment cut at another chunk size is refused by createCapsuleHeader', async () => {
    const other = await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID, { chunkSize: 2 * CHUNK })
    expect(() =>
      createCapsuleHeader({ ...BASE, chunkSize: CHUNK, dataKey: DATA_KEY, commitment: other }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })
})

describe('sealFile on lanes', () => {
  it('writes the same bytes as sealCapsule, to a file and to /dev/null', async () => {
    const c = await commitment()
    const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, commitment: c })
    const signature = signCapsuleHeader(header, OWNER_KEY)
    const want = sealCapsule({ header, signature, dataKey: DATA_KEY, plaintext })
    const seen: number[] = []
    const output = join(tmp, 'same.capsule')
    const parsed = await sealFile({
      header,
      signature,
      dataKey: DATA_KEY,
      input,
      output,
      onProgress: (n) => seen.push(n),
      threads: 2,
    })
    expect(parsed.chunkCount).toBe(38)
    expect(hex(readFileSync(output))).toBe(hex(want))
    expect(seen.at(-1)).toBe(plaintext.length)
    await sealFile({ header, signature, dataKey: DATA_KEY, input, output: '/dev/null', threads: 2 })
    rmSync(output)
  })

  it('falls back to one thread for an output without positional writes (a FIFO)', async () => {
    const c = await commitment()
    const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, commitment: c })
    const signature = signCapsuleHeader(header, OWNER_KEY)
    const fifo = join(tmp, 'out.fifo')
    execFileSync('mkfifo', [fifo])
    const reader = import('node:fs/promises').then((fs) => fs.readFile(fifo))
    await sealFile({ header, signature, dataKey: DATA_KEY, input, output: fifo, threads: 2 })
    expect(hex(await reader)).toBe(
      hex(sealCapsule({ header, signature, dataKey: DATA_KEY, plaintext })),
    )
    rmSync(fifo)
  })

  it('round-trips random sizes and chunk sizes (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 9000 }),
        fc.constantFrom(64, 256, 1024),
        fc.integer({ min: 0, max: 2 ** 31 }),
        async (size, chunkSize, seed) => {
          const data = detBytes(`prop ${seed}`, size)
          const path = join(tmp, 'prop.bin')
          writeFileSync(path, data)
          const c = await commitPlaintextFile(path, DATA_KEY, CAPSULE_ID, { chunkSize, threads: 2 })
          const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, commitment: c })
          const signature = signCapsuleHeader(header, OWNER_KEY)
          const out = join(tmp, 'prop.capsule')
          await sealFile({
            header,
            signature,
            dataKey: DATA_KEY,
            input: path,
            output: out,
            threads: 2,
          })
          const want = sealCapsule({ header, signature, dataKey: DATA_KEY, plaintext: data })
          expect(hex(readFileSync(out))).toBe(hex(want))
          await openFile({
            input: out,
            output: join(tmp, 'prop.out'),
            dataKey: DATA_KEY,
            threads: 2,
          })
          expect(hex(readFileSync(join(tmp, 'prop.out')))).toBe(hex(data))
        },
      ),
      { numRuns: 15 },
    )
    for (const f of ['prop.bin', 'prop.capsule', 'prop.out']) rmSync(join(tmp, f))
  })

  it('refuses an input whose size differs from the header', async () => {
    const c = await commitment()
    const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, commitment: c })
    const grown = join(tmp, 'grown.bin')
    writeFileSync(grown, Buffer.concat([plaintext, Buffer.from([1])]))
    await expect(
      sealFile({
        header,
        signature: signCapsuleHeader(header, OWNER_KEY),
        dataKey: DATA_KEY,
        input: grown,
        output: join(tmp, 'grown.capsule'),
        threads: 2,
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    expect(readdirSync(tmp).some((f) => f.startsWith('.grown.capsule'))).toBe(false)
    rmSync(grown)
  })
})

describe('openFile on lanes', () => {
  it.each(MODES)('%s: opens to a file and to /dev/null', async (mode) => {
    const capsule = await seal('good.capsule', await commitment())
    const out = join(tmp, `good-${mode}.bin`)
    const parsed = await openFile({
      input: capsule,
      output: out,
      dataKey: DATA_KEY,
      threads: threads(mode),
    })
    expect(parsed.chunkCount).toBe(38)
    expect(hex(readFileSync(out))).toBe(hex(plaintext))
    await openFile({
      input: capsule,
      output: '/dev/null',
      dataKey: DATA_KEY,
      threads: threads(mode),
    })
  })

  it.each(
    MODES,
  )('%s: a commitment mismatch throws CAPSULE_INTEGRITY and leaves no output', async (mode) => {
    const capsule = await sealForeignCommitment()
    const before = readdirSync(tmp).sort()
    const err = await openFile({
      input: capsule,
      output: join(tmp, `foreign-${mode}.bin`),
      dataKey: DATA_KEY,
      threads: threads(mode),
    }).catch((e: unknown) => e)
    expect(err).toMatchObject({
      code: 'CAPSULE_INTEGRITY',
      details: { reason: 'plaintext-commitment' },
    })
    expect(readdirSync(tmp).sort()).toEqual(before)
    // Switching the check off opens it: every chunk does authenticate.
    await openFile({
      input: capsule,
      output: '/dev/null',
      dataKey: DATA_KEY,
      checkCommitment: false,
      threads: threads(mode),
    })
  })

  it('tampered, truncated, extended, swapped: the same errors as one thread', async () => {
    const capsule = await seal('t.capsule', await commitment())
    const bytes = readFileSync(capsule)
    const stride = CHUNK + 16
    const payloadOffset = bytes.length - 37 * stride - (11 + 16)
    const at = (i: number) => payloadOffset + i * stride
    const flipAt = (pos: number) => {
      const b = Uint8Array.from(bytes)
      b[pos] = (b[pos] as number) ^ 0x40
      return b
    }
    const swapped = Uint8Array.from(bytes)
    swapped.set(bytes.subarray(at(3), at(4)), at(2))
    swapped.set(bytes.subarray(at(2), at(3)), at(3))
    const cases: [string, Uint8Array][] = [
      ['flip-first', flipAt(at(0) + 7)],
      ['flip-middle', flipAt(at(20) + 500)],
      ['flip-two', flipAt(at(30) + 1).map((v, i) => (i === at(9) + 3 ? v ^ 1 : v))],
      ['flip-last-tag', flipAt(bytes.length - 3)],
      ['swapped', swapped],
      ['cut', bytes.subarray(0, bytes.length - 100)],
      ['cut-chunk', bytes.subarray(0, at(37))],
      ['extra', Buffer.concat([bytes, Buffer.from([0])])],
    ]
    for (const [name, data] of cases) {
      const path = join(tmp, `${name}.capsule`)
      writeFileSync(path, data)
      const errors = []
      for (const mode of MODES) {
        errors.push(
          await openFile({
            input: path,
            output: join(tmp, `${name}-${mode}.out`),
            dataKey: DATA_KEY,
            threads: threads(mode),
          }).catch((e: unknown) => e),
        )
      }
      const [parallel, sequential] = errors as [Record<string, unknown>, Record<string, unknown>]
      expect(sequential.code, name).toMatch(/^CAPSULE_/)
      expect({ code: parallel.code, details: parallel.details }, name).toEqual({
        code: sequential.code,
        details: sequential.details,
      })
      rmSync(path)
    }
    expect(readdirSync(tmp).filter((f) => f.endsWith('.out') || f.includes('.partial'))).toEqual([])
  })

  it('a wrong key fails before any worker starts', async () => {
    const capsule = await seal('k.capsule', await commitment())
    await expect(
      openFile({ input: capsule, output: '/dev/null', dataKey: WRONG_KEY, threads: 2 }),
    ).rejects.toMatchObject({ code: 'CAPSULE_KEY' })
  })

  it('the lanes write the same plaintext as the sequential path whatever the output', async () => {
    const capsule = await seal('seq.capsule', await commitment(), 'sequential')
    const viaLanes = await seal('par.capsule', await commitment(), 'parallel')
    expect(hex(readFileSync(viaLanes))).toBe(hex(readFileSync(capsule)))
  })
})

describe('seal lanes in worker threads, chunks of several cipher slices (ADR 0003, amended 2026-12-06)', () => {
  // 128 KiB chunks are two 64 KiB cipher slices gathered into one write; the test seam makes the
  // calling thread wait for each worker to be up, so workers seal chunks too (their buffers are
  // sized apart, from workerData).
  const BIG = 128 * 1024
  beforeAll(() => {
    laneFaults.waitForWorkers = true
  })
  afterAll(() => {
    laneFaults.waitForWorkers = undefined
  })
  const sign = (h: CapsuleHeader) => signCapsuleHeader(h, OWNER_KEY)

  it.each([
    2, 3,
  ])('%i threads: sealFile and commitAndSealFile write sealCapsule’s bytes', async (n) => {
    const data = detBytes(`slices ${n}`, 5 * BIG + 70_001)
    const path = join(tmp, `slices-${n}.bin`)
    writeFileSync(path, data)
    const c = await commitPlaintextFile(path, DATA_KEY, CAPSULE_ID, { chunkSize: BIG, threads: n })
    const header = createCapsuleHeader({
      ...BASE,
      chunkSize: BIG,
      dataKey: DATA_KEY,
      commitment: c,
    })
    const want = sealCapsule({
      header,
      signature: sign(header),
      dataKey: DATA_KEY,
      plaintext: data,
    })
    const twoPass = join(tmp, `slices-${n}.capsule`)
    await sealFile({
      header,
      signature: sign(header),
      dataKey: DATA_KEY,
      input: path,
      output: twoPass,
      threads: n,
    })
    expect(hex(readFileSync(twoPass))).toBe(hex(want))
    const onePass = join(tmp, `slices-${n}-one-pass.capsule`)
    const parsed = await commitAndSealFile({
      ...BASE,
      dataKey: DATA_KEY,
      chunkSize: BIG,
      sign,
      input: path,
      output: onePass,
      threads: n,
    })
    expect(hex(readFileSync(onePass))).toBe(
      hex(
        sealCapsule({
          header: parsed.header,
          signature: sign(parsed.header),
          dataKey: DATA_KEY,
          plaintext: data,
        }),
      ),
    )
    rmSync(path)
    rmSync(twoPass)
    rmSync(onePass)
  })
})
