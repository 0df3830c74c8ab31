/**
 * `commitAndSealFile`: the plaintext commitment, the header and the signature made in the same
 * read of the input as the encryption, each chunk's GCM tag moved from a zero AAD to the
 * header hash afterwards (`src/ghash.ts`). The output must be byte for byte the two-pass
 * result (`commitPlaintextFile` + `sealFile`), which is itself checked against `sealCapsule`.
 */

import { execFileSync } from 'node:child_process'
import { createCipheriv, randomBytes } from 'node:crypto'
import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { fileLimits } from '../src/file/index.ts'
import { gcmTagDelta, gfMultiply, ghashKey } from '../src/ghash.ts'
import {
  addressFromPrivateKey,
  type CapsuleHeader,
  type CommitAndSealFileParameters,
  commitAndSealFile,
  commitPlaintextFile,
  createCapsuleHeader,
  openFile,
  sealCapsule,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, CAPSULE_ID, DATA_KEY, detBytes, OTHER_KEY, OWNER_KEY } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-one-pass-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const sign = (header: CapsuleHeader) => signCapsuleHeader(header, OWNER_KEY)
const leftovers = () => readdirSync(tmp).filter((f) => f.endsWith('.partial'))

function gcmTag(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array) {
  const c = createCipheriv('aes-256-gcm', key, iv)
  c.setAAD(aad)
  c.update(plaintext)
  c.final()
  return new Uint8Array(c.getAuthTag())
}

describe('GHASH tag correction', () => {
  it('moves an AES-256-GCM tag between two AADs exactly as OpenSSL computes it (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.integer({ min: 0, max: 600 }),
        fc.integer({ min: 0, max: 70 }),
        fc.integer(),
        (key, iv, length, aadLength, seed) => {
          const plaintext = detBytes(`gcm ${seed}`, length)
          const from = detBytes(`from ${seed}`, aadLength)
          const to = detBytes(`to ${seed}`, aadLength)
          const delta = gcmTagDelta(ghashKey(key), from, to, length)
          const moved = gcmTag(key, iv, from, plaintext).map((b, i) => b ^ (delta[i] as number))
          expect(hex(moved)).toBe(hex(gcmTag(key, iv, to, plaintext)))
        },
      ),
      { numRuns: 200 },
    )
  })

  it('holds for chunk-sized ciphertexts (1 MiB, 16 MiB − 1)', () => {
    for (const length of [1024 * 1024, 16 * 1024 * 1024 - 1]) {
      const key = randomBytes(32)
      const iv = randomBytes(12)
      const plaintext = new Uint8Array(length).fill(7)
      const aad = randomBytes(32)
      const delta = gcmTagDelta(ghashKey(key), new Uint8Array(32), aad, length)
      const moved = gcmTag(key, iv, new Uint8Array(32), plaintext).map(
        (b, i) => b ^ (delta[i] as number),
      )
      expect(hex(moved)).toBe(hex(gcmTag(key, iv, aad, plaintext)))
    }
  })

  it('multiplies in GF(2^128) as the GCM spec does (test case 2 of the GCM submission)', () => {
    // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 2: K = 0^128,
    // P = 0^128, so H = 66e94bd4ef8a2c3b884cfa59ca342b2e, C = 0388dace60b6a392f328c2b971b2fe78,
    // and GHASH(H, {}, C) = (C · H) · H ⊕ len · H = f38cbb1ad69223dcc3457ae5b6b0f885.
    const h = BigInt('0x66e94bd4ef8a2c3b884cfa59ca342b2e')
    const c = BigInt('0x0388dace60b6a392f328c2b971b2fe78')
    const len = 128n // len(A) = 0, len(C) = 128 bits
    const x1 = gfMultiply(c, h)
    const ghash = gfMultiply(x1 ^ len, h)
    expect(ghash.toString(16)).toBe('f38cbb1ad69223dcc3457ae5b6b0f885')
    expect(() => gcmTagDelta(new Uint8Array(16), new Uint8Array(3), new Uint8Array(4), 0)).toThrow(
      RangeError,
    )
  })
})

/** Two passes, the reference: commitment, header, signature, then sealFile. */
async function twoPass(input: string, chunkSize: number, threads: number): Promise<Uint8Array> {
  const commitment = await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID, { chunkSize, threads })
  const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, commitment })
  const signature = sign(header)
  const plaintext = readFileSync(input)
  return sealCapsule({ header, signature, dataKey: DATA_KEY, plaintext })
}

describe('commitAndSealFile', () => {
  const CHUNK = 1024
  const plaintext = detBytes('one pass', 37 * CHUNK + 11)
  const input = join(tmp, 'plain.bin')
  writeFileSync(input, plaintext)
  /** `input` sealed into `output` on 2 lanes, with anything overridden. */
  const sealInto = (output: string, overrides: Partial<CommitAndSealFileParameters> = {}) =>
    commitAndSealFile({
      ...BASE,
      dataKey: DATA_KEY,
      chunkSize: CHUNK,
      sign,
      input,
      output,
      threads: 2,
      ...overrides,
    })

  it.each([
    [0, 1],
    [0, 2],
    [1, 2],
    [CHUNK - 1, 2],
    [CHUNK, 2],
    [CHUNK + 1, 1],
    [CHUNK + 1, 2],
    [37 * CHUNK + 11, 1],
    [37 * CHUNK + 11, 2],
    [37 * CHUNK + 11, 3],
  ])('%i bytes, %i lane(s): the same bytes as the two passes, and it opens', async (n, threads) => {
    const path = join(tmp, `in-${n}.bin`)
    writeFileSync(path, plaintext.subarray(0, n))
    const output = join(tmp, `out-${n}-${threads}.capsule`)
    const seen: number[] = []
    const parsed = await commitAndSealFile({
      ...BASE,
      dataKey: DATA_KEY,
      chunkSize: CHUNK,
      sign,
      input: path,
      output,
      threads,
      onProgress: (b) => seen.push(b),
    })
    expect(hex(readFileSync(output))).toBe(hex(await twoPass(path, CHUNK, threads)))
    expect(parsed.header.payload.plaintextSize).toBe(n)
    expect(seen.at(-1)).toBe(n)
    await openFile({ input: output, output: join(tmp, 'opened.bin'), dataKey: DATA_KEY })
    expect(hex(readFileSync(join(tmp, 'opened.bin')))).toBe(hex(plaintext.subarray(0, n)))
    rmSync(output)
    rmSync(path)
  })

  it('round-trips random sizes and chunk sizes (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 9000 }),
        fc.constantFrom(64, 256, 1024),
        fc.constantFrom(1, 2),
        fc.integer({ min: 0, max: 2 ** 31 }),
        async (size, chunkSize, threads, seed) => {
          const data = detBytes(`one pass ${seed}`, size)
          const path = join(tmp, 'prop.bin')
          writeFileSync(path, data)
          const out = join(tmp, 'prop.capsule')
          await commitAndSealFile({
            ...BASE,
            dataKey: DATA_KEY,
            chunkSize,
            sign,
            input: path,
            output: out,
            threads,
          })
          expect(hex(readFileSync(out))).toBe(hex(await twoPass(path, chunkSize, threads)))
        },
      ),
      { numRuns: 20 },
    )
    rmSync(join(tmp, 'prop.bin'))
    rmSync(join(tmp, 'prop.capsule'))
  })

  it('accepts an async signer (a wallet) and a random capsule id by default', async () => {
    const { capsuleId: _omit, ...fields } = BASE
    const output = join(tmp, 'async.capsule')
    const parsed = await commitAndSealFile({
      ...fields,
      dataKey: DATA_KEY,
      chunkSize: CHUNK,
      sign: async (header) => {
        await new Promise((resolve) => setTimeout(resolve, 5))
        return `0x${hex(sign(header))}`
      },
      input,
      output,
      threads: 2,
    })
    expect(hex(parsed.header.capsuleId)).not.toBe(hex(CAPSULE_ID))
    await openFile({ input: output, output: '/dev/null', dataKey: DATA_KEY, owner: BASE.owner })
    rmSync(output)
  })

  it('writes to /dev/null, and falls back to two passes for a FIFO output', async () => {
    await sealInto('/dev/null')
    const fifo = join(tmp, 'out.fifo')
    execFileSync('mkfifo', [fifo])
    const reader = import('node:fs/promises').then((fs) => fs.readFile(fifo))
    await sealInto(fifo)
    expect(hex(await reader)).toBe(hex(await twoPass(input, CHUNK, 2)))
    rmSync(fifo)
  })

  it('holds chunk tags up to fileLimits.maxHeldTagBytes, then reads the input twice', async () => {
    // Observable order: one pass signs after the last chunk; two passes sign before the first.
    const events = async (output: string) => {
      const seen: string[] = []
      await sealInto(output, {
        sign: (header) => {
          seen.push('sign')
          return sign(header)
        },
        onProgress: () => seen.push('chunk'),
      })
      expect(hex(readFileSync(output))).toBe(hex(await twoPass(input, CHUNK, 2)))
      return seen
    }
    const output = join(tmp, 'limits.capsule')
    expect((await events(output)).at(-1)).toBe('sign')
    const saved = fileLimits.maxHeldTagBytes
    fileLimits.maxHeldTagBytes = 37 * 16 // 38 chunks do not fit
    try {
      expect((await events(output))[0]).toBe('sign')
    } finally {
      fileLimits.maxHeldTagBytes = saved
    }
    rmSync(output)
  })

  it('checks every field before it reads the input, and leaves nothing behind', async () => {
    const output = join(tmp, 'bad.capsule')
    let signed = 0
    const bad = (overrides: Partial<CommitAndSealFileParameters>) =>
      sealInto(output, {
        sign: (header) => {
          signed++
          return sign(header)
        },
        ...overrides,
      })
    const invalid = { code: 'INVALID_ARGUMENT' }
    await expect(bad({ chunkSize: 1000 })).rejects.toMatchObject(invalid)
    await expect(bad({ dataKey: new Uint8Array(31) })).rejects.toMatchObject(invalid)
    const wasiWithoutEntry = { kind: 'wasi' } as CapsuleHeader['runtime']
    await expect(bad({ runtime: wasiWithoutEntry })).rejects.toMatchObject(invalid)
    await expect(bad({ input: tmp })).rejects.toMatchObject({ ...invalid, details: { input: tmp } })
    await expect(bad({ input: join(tmp, 'missing.bin') })).rejects.toMatchObject({
      code: 'ENOENT',
    })
    expect(signed).toBe(0)
    expect(leftovers()).toEqual([])
  })

  it("rejects a signature that is not the owner's, or of the wrong length", async () => {
    const output = join(tmp, 'sig.capsule')
    // A valid signature by someone else, over the same header naming them as owner.
    const other = (header: CapsuleHeader) =>
      signCapsuleHeader({ ...header, owner: addressFromPrivateKey(OTHER_KEY) }, OTHER_KEY)
    await expect(sealInto(output, { sign: other })).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
    })
    await expect(sealInto(output, { sign: () => new Uint8Array(64) })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    const refuse = () => {
      throw new Error('wallet refused')
    }
    await expect(sealInto(output, { sign: refuse })).rejects.toThrow('wallet refused')
    expect(leftovers()).toEqual([])
    expect(readdirSync(tmp)).not.toContain('sig.capsule')
  })

  it('fails with INVALID_ARGUMENT, leaving nothing, when the input grows while it is read', async () => {
    const path = join(tmp, 'growing.bin')
    writeFileSync(path, detBytes('growing', 64 * CHUNK))
    const output = join(tmp, 'growing.capsule')
    // The last progress call comes after the last read: the file grows before the size check.
    const grow = (n: number) => {
      if (n === 64 * CHUNK) appendFileSync(path, new Uint8Array(1))
    }
    await expect(sealInto(output, { input: path, onProgress: grow })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    expect(leftovers()).toEqual([])
    expect(readdirSync(tmp)).not.toContain('growing.capsule')
    rmSync(path)
  })
})
