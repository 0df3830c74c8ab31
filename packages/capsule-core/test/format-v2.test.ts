/**
 * Format version 2 (SPEC.md §11): the tag table, the zero padding before 1 MiB-aligned bodies,
 * the commitment over the ciphertext. Every reader (buffer, Web and Node streams, file on one
 * thread and on lanes, random access) must open what every sealer (buffer, `sealFile`,
 * `commitAndSealFile`) wrote, byte for byte the same capsule, and must refuse the same forgeries
 * with the same codes.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decode, encode, rfc8949EncodeOptions } from 'cborg'
import { afterAll, describe, expect, it } from 'vitest'
import {
  CAPSULE_FORMAT_VERSION_2,
  capsuleChunkRange,
  commitAndSealFile,
  createCapsuleHeader,
  decodeCapsuleHeader,
  encodeCapsuleHeader,
  openChunk,
  openFileInto,
  parseCapsuleHeader,
  sealFile,
  sealStream,
  signCapsuleHeader,
  V2_CHUNK_SIZE,
} from '../src/index.ts'
import { derivePayloadKey } from '../src/keys.ts'
import { encryptChunk } from '../src/payload.ts'
import { BASE, build, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'
import { type Outcome, viaBuffer, viaFile, viaNodeStream, viaWebStream } from './readers.ts'

const MiB = 1024 * 1024
const tmp = mkdtempSync(join(tmpdir(), 'digicap-v2-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const v2 = (plaintext: Uint8Array) => build(plaintext, V2_CHUNK_SIZE, { formatVersion: 2 })

/** Every reader, the Web stream in odd pieces so the table, the padding and the bodies are crossed mid-piece. */
async function everyReader(capsule: Uint8Array, name: string): Promise<Record<string, Outcome>> {
  return {
    buffer: await viaBuffer(capsule, DATA_KEY),
    web: await viaWebStream(capsule, DATA_KEY, 65_537),
    node: await viaNodeStream(capsule, DATA_KEY),
    'file×1': await viaFile(tmp, name, capsule, DATA_KEY, 1),
    'file×2': await viaFile(tmp, name, capsule, DATA_KEY, 2),
  }
}

function expectAll(results: Record<string, Outcome>, want: Outcome): void {
  for (const [reader, got] of Object.entries(results)) {
    if (want.ok) {
      expect(got.ok, `${reader}: ${JSON.stringify(got.ok ? '' : got)}`).toBe(true)
      expect(
        Buffer.compare(
          Buffer.from((got as { plaintext: Uint8Array }).plaintext),
          Buffer.from(want.plaintext),
        ),
        reader,
      ).toBe(0)
    } else {
      expect(got.ok, reader).toBe(false)
      expect((got as { code: string }).code, reader).toBe(want.code)
      if (want.reason !== undefined)
        expect((got as { reason?: unknown }).reason, reader).toBe(want.reason)
    }
  }
}

const flipBit = (c: Uint8Array, at: number) => {
  c[at] = (c[at] as number) ^ 1
}
const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest())

// 65 chunks: aligned (64 or more). 3 MiB + 5: three full bodies and a short one, unaligned.
const ALIGNED = detBytes('v2 aligned', 64 * MiB + 7)
const SMALL = detBytes('v2 small', 3 * MiB + 5)
const aligned = v2(ALIGNED)
const small = v2(SMALL)

describe('format version 2: layout', () => {
  it('writes version 2 in the preamble and the header, with payloadCommitment and a 1 MiB chunk', () => {
    const parsed = parseCapsuleHeader(aligned.capsule)
    expect(aligned.capsule[7]).toBe(CAPSULE_FORMAT_VERSION_2)
    expect(parsed.header.version).toBe(2)
    expect(parsed.header.payload.chunkSize).toBe(MiB)
    const raw = encodeCapsuleHeader(parsed.header)
    expect(Buffer.from(raw).includes(Buffer.from('payloadCommitment'))).toBe(true)
    expect(Buffer.from(raw).includes(Buffer.from('plaintextCommitment'))).toBe(false)
  })

  it('puts the tag table after the signature and, from 64 chunks, the bodies on 1 MiB offsets after zero padding', () => {
    const parsed = parseCapsuleHeader(aligned.capsule)
    expect(parsed.chunkCount).toBe(65)
    expect(parsed.bodiesOffset).toBe(MiB)
    expect(parsed.capsuleLength).toBe(aligned.capsule.length)
    expect(aligned.capsule.length).toBe(MiB + ALIGNED.length)
    const tableEnd = parsed.payloadOffset + 16 * 65
    expect(aligned.capsule.subarray(tableEnd, MiB).every((b) => b === 0)).toBe(true)
    // no tag of the zero AAD anywhere: the table's tags are the ones that authenticate
    const key = derivePayloadKey(DATA_KEY, parsed.header.capsuleId)
    const body0 = ALIGNED.subarray(0, MiB)
    const sealed = encryptChunk(key, parsed.headerHash, 0, false, [body0])
    const tag0 = sealed.pop() as Uint8Array
    expect(
      Buffer.from(aligned.capsule.subarray(parsed.payloadOffset, parsed.payloadOffset + 16)),
    ).toEqual(Buffer.from(tag0))
    expect(Buffer.from(aligned.capsule.subarray(MiB, MiB + 64))).toEqual(
      Buffer.from(Buffer.concat(sealed).subarray(0, 64)),
    )
  })

  it('under 64 chunks puts the bodies right after the table', () => {
    const parsed = parseCapsuleHeader(small.capsule)
    expect(parsed.chunkCount).toBe(4)
    expect(parsed.bodiesOffset).toBe(parsed.payloadOffset + 64)
    expect(small.capsule.length).toBe(parsed.bodiesOffset + SMALL.length)
  })

  it('commits to the ciphertext: SHA-256 over the label, the sizes and each body’s digest', () => {
    const parsed = parseCapsuleHeader(small.capsule)
    const h = createHash('sha256').update('digicap capsule v2 ciphertext commitment')
    const sizes = Buffer.alloc(12)
    sizes.writeUInt32BE(MiB, 0)
    sizes.writeBigUInt64BE(BigInt(SMALL.length), 4)
    h.update(sizes)
    for (let i = 0; i < 4; i++) {
      const { start, end } = capsuleChunkRange(parsed, i)
      h.update(sha256(small.capsule.subarray(start, end)))
    }
    expect(Buffer.from(parsed.header.payload.contentCommitment)).toEqual(h.digest())
  })
})

describe('format version 2: every reader opens what every sealer writes', () => {
  for (const [name, plaintext] of [
    ['empty', new Uint8Array(0)],
    ['one byte', detBytes('one', 1)],
    ['one whole chunk', detBytes('whole', MiB)],
    ['a chunk and a byte', detBytes('whole+1', MiB + 1)],
    ['small', SMALL],
    ['aligned', ALIGNED],
  ] as const) {
    it(`opens ${name}`, async () => {
      const built = name === 'aligned' ? aligned : name === 'small' ? small : v2(plaintext)
      expectAll(await everyReader(built.capsule, `open-${name.replace(/ /g, '-')}`), {
        ok: true,
        plaintext,
      })
    })
  }

  it('the payload digest of a version 2 open is the one of version 1 for the same plaintext (docs/bundle.md §7)', async () => {
    const v1 = build(SMALL, MiB)
    const digest = async (capsule: Uint8Array, name: string) => {
      const input = join(tmp, `${name}.capsule`)
      writeFileSync(input, capsule)
      const { open } = await import('node:fs/promises')
      const inH = await open(input, 'r')
      const outH = await open(join(tmp, `${name}.plain`), 'w+')
      try {
        return await openFileInto({
          input: inH,
          output: outH,
          parsed: parseCapsuleHeader(capsule),
          dataKey: DATA_KEY,
        })
      } finally {
        await inH.close()
        await outH.close()
      }
    }
    expect(Buffer.from(await digest(small.capsule, 'pd-v2'))).toEqual(
      Buffer.from(await digest(v1.capsule, 'pd-v1')),
    )
  })

  for (const threads of [1, 2]) {
    it(`commitAndSealFile (threads ${threads}) writes the bytes sealCapsule does, and hands the bodies’ digests to onWritten`, async () => {
      const input = join(tmp, `cas-${threads}.bin`)
      writeFileSync(input, ALIGNED)
      const output = join(tmp, `cas-${threads}.capsule`)
      let handed: readonly { offset: number; length: number; digest: Uint8Array }[] | undefined
      const parsed = await commitAndSealFile({
        ...BASE,
        formatVersion: 2,
        dataKey: DATA_KEY,
        input,
        output,
        threads,
        sign: (header) => signCapsuleHeader(header, OWNER_KEY),
        onWritten: async (_path, pieces) => {
          handed = pieces
        },
      })
      const written = readFileSync(output)
      expect(parsed.header.version).toBe(2)
      expect(Buffer.compare(written, aligned.capsule)).toBe(0)
      expect(handed?.length).toBe(65)
      for (const [i, p] of (handed ?? []).entries()) {
        expect(p.offset).toBe(MiB + i * MiB)
        expect(Buffer.from(p.digest)).toEqual(
          Buffer.from(sha256(written.subarray(p.offset, p.offset + p.length))),
        )
      }
      expect((handed ?? []).at(-1)?.length).toBe(7)
    })
  }

  it('commitAndSealFile of an unaligned capsule hands no pieces (its bodies are not 1 MiB leaves)', async () => {
    const input = join(tmp, 'cas-small.bin')
    writeFileSync(input, SMALL)
    const output = join(tmp, 'cas-small.capsule')
    let called = false
    let handed: unknown = 'unset'
    await commitAndSealFile({
      ...BASE,
      formatVersion: 2,
      dataKey: DATA_KEY,
      input,
      output,
      sign: (header) => signCapsuleHeader(header, OWNER_KEY),
      onWritten: async (_p, pieces) => {
        called = true
        handed = pieces
      },
    })
    expect(called).toBe(true)
    expect(handed).toBeUndefined()
    expect(Buffer.compare(readFileSync(output), small.capsule)).toBe(0)
  })

  it('sealFile refuses a version 2 header made for other bytes, and leaves no output', async () => {
    const input = join(tmp, 'sf-other.bin')
    const other = Buffer.from(SMALL)
    flipBit(other, 2 * MiB + 1)
    writeFileSync(input, other)
    const output = join(tmp, 'sf-other.capsule')
    const err = await sealFile({
      header: small.header,
      signature: small.signature,
      dataKey: DATA_KEY,
      input,
      output,
    }).catch((e: unknown) => e)
    expect(err).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/changed/),
    })
    expect(readdirSync(tmp).filter((f) => f.includes('sf-other.capsule'))).toEqual([])
  })

  it('commitAndSealFile leaves the tag table zero until the bodies are sealed (ADR 0004: no zero-AAD tag is ever written)', async () => {
    const input = join(tmp, 'zero-table.bin')
    writeFileSync(input, ALIGNED)
    const output = join(tmp, 'zero-table.capsule')
    const parsed = parseCapsuleHeader(aligned.capsule)
    const region = [parsed.payloadOffset, parsed.bodiesOffset] as const
    let looked = 0
    await commitAndSealFile({
      ...BASE,
      formatVersion: 2,
      dataKey: DATA_KEY,
      input,
      output,
      threads: 2,
      sign: (header) => signCapsuleHeader(header, OWNER_KEY),
      // after each run of chunks: the partial file's table and padding are still all zero
      onProgress: () => {
        const partial = readdirSync(tmp).find((f) => f.startsWith('.zero-table.capsule.'))
        if (!partial) return
        const bytes = readFileSync(join(tmp, partial))
        if (bytes.length < region[1]) return
        looked++
        expect(bytes.subarray(...region).every((b) => b === 0)).toBe(true)
      },
    })
    expect(looked).toBeGreaterThan(10)
    expect(Buffer.compare(readFileSync(output), aligned.capsule)).toBe(0)
  })

  it('sealFile with a version 2 header writes the same bytes', async () => {
    for (const [name, b] of [
      ['aligned', aligned],
      ['small', small],
    ] as const) {
      const input = join(tmp, `sf-${name}.bin`)
      writeFileSync(input, b.plaintext)
      const output = join(tmp, `sf-${name}.capsule`)
      await sealFile({ header: b.header, signature: b.signature, dataKey: DATA_KEY, input, output })
      expect(Buffer.compare(readFileSync(output), b.capsule), name).toBe(0)
    }
  })

  it('random access: each body opens alone with its tag from the table', () => {
    const parsed = parseCapsuleHeader(small.capsule)
    for (let i = 0; i < parsed.chunkCount; i++) {
      const { start, end, tagStart } = capsuleChunkRange(parsed, i)
      const plain = openChunk(
        parsed,
        DATA_KEY,
        i,
        small.capsule.subarray(start, end),
        small.capsule.subarray(tagStart, tagStart + 16),
      )
      expect(Buffer.from(plain)).toEqual(
        Buffer.from(SMALL.subarray(i * MiB, i * MiB + plain.length)),
      )
    }
    const { start, end, tagStart } = capsuleChunkRange(parsed, 1)
    // body 1 with body 2's tag: refused
    expect(() =>
      openChunk(
        parsed,
        DATA_KEY,
        1,
        small.capsule.subarray(start, end),
        small.capsule.subarray(tagStart + 16, tagStart + 32),
      ),
    ).toThrow(expect.objectContaining({ code: 'CAPSULE_INTEGRITY' }))
    expect(() => openChunk(parsed, DATA_KEY, 1, small.capsule.subarray(start, end))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })
})

describe('format version 2: forgeries and damage, refused alike by every reader', () => {
  const parsed = parseCapsuleHeader(aligned.capsule)
  const mutate = (f: (c: Uint8Array) => void, from = aligned.capsule) => {
    const c = from.slice()
    f(c)
    return c
  }
  const cases: [string, () => Uint8Array, Outcome][] = [
    [
      'a flipped bit in a body',
      () =>
        mutate((c) => {
          flipBit(c, MiB + 5 * MiB + 17)
        }),
      { ok: false, code: 'CAPSULE_INTEGRITY', reason: 'chunk-authentication' },
    ],
    [
      'a flipped bit in the last tag',
      () =>
        mutate((c) => {
          flipBit(c, parsed.payloadOffset + 64 * 16)
        }),
      { ok: false, code: 'CAPSULE_INTEGRITY', reason: 'chunk-authentication' },
    ],
    [
      'two bodies swapped',
      () =>
        mutate((c) => {
          const a = c.slice(2 * MiB, 3 * MiB)
          c.copyWithin(2 * MiB, 3 * MiB, 4 * MiB)
          c.set(a, 3 * MiB)
        }),
      { ok: false, code: 'CAPSULE_INTEGRITY', reason: 'chunk-authentication' },
    ],
    [
      'two bodies swapped with their tags',
      () =>
        mutate((c) => {
          const a = c.slice(2 * MiB, 3 * MiB)
          c.copyWithin(2 * MiB, 3 * MiB, 4 * MiB)
          c.set(a, 3 * MiB)
          const t = parsed.payloadOffset + 16
          const ta = c.slice(t, t + 16)
          c.copyWithin(t, t + 16, t + 32)
          c.set(ta, t + 16)
        }),
      { ok: false, code: 'CAPSULE_INTEGRITY', reason: 'chunk-authentication' },
    ],
    [
      'a non-zero byte in the padding',
      () =>
        mutate((c) => {
          c[MiB - 1] = 1
        }),
      { ok: false, code: 'CAPSULE_FORMAT', reason: 'padding' },
    ],
    [
      'a trailing byte',
      () => {
        const c = new Uint8Array(aligned.capsule.length + 1)
        c.set(aligned.capsule)
        return c
      },
      { ok: false, code: 'CAPSULE_INTEGRITY', reason: 'trailing-data' },
    ],
    [
      'the capsule cut inside the tag table',
      () => aligned.capsule.slice(0, parsed.payloadOffset + 100),
      { ok: false, code: 'CAPSULE_TRUNCATED' },
    ],
    [
      'the capsule cut inside the padding',
      () => aligned.capsule.slice(0, MiB - 10),
      { ok: false, code: 'CAPSULE_TRUNCATED' },
    ],
    [
      'the capsule cut inside the last body',
      () => aligned.capsule.slice(0, aligned.capsule.length - 3),
      { ok: false, code: 'CAPSULE_TRUNCATED' },
    ],
    [
      'the version byte set to 1 under a version 2 header',
      () =>
        mutate((c) => {
          c[7] = 1
        }),
      { ok: false, code: 'CAPSULE_FORMAT' },
    ],
  ]
  for (const [name, make, want] of cases) {
    it(`refuses ${name}`, async () => {
      expectAll(await everyReader(make(), `bad-${name.replace(/[^a-z0-9]+/g, '-')}`), want)
    })
  }

  it('a key holder’s other plaintext under the signed header (valid tags) fails the commitment, by every reader', async () => {
    // What only someone with the data key can make: another payload whose every tag verifies.
    const other = SMALL.slice()
    flipBit(other, MiB + 3)
    const p = parseCapsuleHeader(small.capsule)
    const key = derivePayloadKey(DATA_KEY, p.header.capsuleId)
    const forged = small.capsule.slice()
    for (let i = 0; i < p.chunkCount; i++) {
      const { start, end, tagStart } = capsuleChunkRange(p, i)
      const parts = encryptChunk(key, p.headerHash, i, i === p.chunkCount - 1, [
        other.subarray(i * MiB, i * MiB + (end - start)),
      ])
      forged.set(parts.pop() as Uint8Array, tagStart)
      forged.set(Buffer.concat(parts), start)
    }
    expectAll(await everyReader(forged, 'key-holder'), {
      ok: false,
      code: 'CAPSULE_INTEGRITY',
      reason: 'payload-commitment',
    })
  })

  it('refuses a version 2 header with another chunk size, or with version 1’s commitment key', () => {
    const raw = (over: Record<string, unknown>) => {
      const h = parseCapsuleHeader(small.capsule).header
      const bytes = encodeCapsuleHeader(h)
      return { h, bytes, over }
    }
    const { h } = raw({})
    expect(() =>
      encodeCapsuleHeader({ ...h, payload: { ...h.payload, chunkSize: 2 * MiB } }),
    ).toThrow(/1 MiB/)
    // a v2 header's CBOR with plaintextCommitment instead of payloadCommitment
    const v1Bytes = encodeCapsuleHeader({ ...h, version: 1 })
    const patched = Buffer.from(v1Bytes)
    patched[patched.indexOf(Buffer.from('version')) + 7] = 2
    expect(() => decodeCapsuleHeader(patched)).toThrow(
      expect.objectContaining({ code: 'CAPSULE_FORMAT' }),
    )
  })

  it('refuses a version 2 payload over 1 TiB (a tag table over 16 MiB) as a limit', () => {
    const h = parseCapsuleHeader(small.capsule).header
    expect(() =>
      encodeCapsuleHeader({ ...h, payload: { ...h.payload, plaintextSize: 2 ** 40 + 1 } }),
    ).toThrow(/over the limit/)
    // as a reader meets it: a limit, not a format error
    const raw = encodeCapsuleHeader(h)
    const cbor = decode(raw) as { payload: { plaintextSize: number } }
    cbor.payload.plaintextSize = 2 ** 40 + 1
    expect(() => decodeCapsuleHeader(encode(cbor, rfc8949EncodeOptions), 2)).toThrow(
      expect.objectContaining({ code: 'CAPSULE_LIMIT' }),
    )
  })

  it('does not seal a version 2 capsule as a stream (its table comes first)', () => {
    expect(() =>
      sealStream({ header: small.header, signature: small.signature, dataKey: DATA_KEY }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })

  it('createCapsuleHeader refuses a version 1 commitment for a version 2 header', () => {
    expect(() =>
      createCapsuleHeader({
        ...BASE,
        formatVersion: 2,
        dataKey: DATA_KEY,
        commitment: { plaintextSize: 1, chunkSize: MiB, plaintextCommitment: new Uint8Array(32) },
      }),
    ).toThrow(/another format version/)
  })
})
