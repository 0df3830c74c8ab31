import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { decode, encode, rfc8949EncodeOptions } from 'cborg'
import { afterAll, describe, expect, it } from 'vitest'
import {
  capsuleChunkRange,
  capsuleId,
  commitPlaintextFile,
  createCapsuleHeader,
  createPlaintextCommitment,
  DEFAULT_CHUNK_SIZE,
  DigicapError,
  decodeCapsuleHeader,
  encodeCapsuleHeader,
  generateCapsuleId,
  generateDataKey,
  openCapsule,
  openChunk,
  openFile,
  openNodeStream,
  openStream,
  parseCapsuleHeader,
  sealCapsule,
  sealFile,
  sealNodeStream,
  sealStream,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, build, CAPSULE_ID, DATA_KEY, detBytes, OWNER_KEY, WRONG_KEY } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-capsule-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const code = (fn: () => unknown) => {
  try {
    fn()
  } catch (err) {
    if (err instanceof DigicapError) return err.code
    throw err
  }
  return 'NO ERROR'
}

describe('seal and open (buffers)', () => {
  it('round-trips and is deterministic', () => {
    const a = build(detBytes('rt', 1000), 128)
    const b = build(detBytes('rt', 1000), 128)
    expect(hex(a.capsule)).toBe(hex(b.capsule))
    const opened = openCapsule(a.capsule, { dataKey: DATA_KEY })
    expect(hex(opened.plaintext)).toBe(hex(a.plaintext))
    expect(opened.parsed.chunkCount).toBe(8)
    expect(opened.parsed.capsuleLength).toBe(a.capsule.length)
    expect(capsuleId(a.capsule)).toBe(`0x${hex(CAPSULE_ID)}`)
    expect(capsuleId(a.header)).toBe(capsuleId(opened.parsed))
  })

  it('uses a 1 MiB default chunk and fresh random ids and keys', () => {
    const h = createCapsuleHeader({
      ...BASE,
      capsuleId: undefined as never,
      dataKey: generateDataKey(),
      plaintext: new Uint8Array(3),
    })
    expect(h.payload.chunkSize).toBe(DEFAULT_CHUNK_SIZE)
    expect(hex(generateCapsuleId())).not.toBe(hex(generateCapsuleId()))
    expect(hex(generateDataKey())).not.toBe(hex(generateDataKey()))
  })

  it('header encoding round-trips exactly', () => {
    const { header } = build(detBytes('hdr', 10), 64)
    const bytes = encodeCapsuleHeader(header)
    expect(hex(encodeCapsuleHeader(decodeCapsuleHeader(bytes)))).toBe(hex(bytes))
  })

  it('an image capsule header (runtime oci, the manifest digest as entry) round-trips', () => {
    const entry = `sha256:${'ab'.repeat(32)}`
    const header = createCapsuleHeader({
      ...BASE,
      runtime: { kind: 'oci', entry },
      dataKey: DATA_KEY,
      plaintext: new Uint8Array(1),
    })
    const decoded = decodeCapsuleHeader(encodeCapsuleHeader(header))
    expect(decoded.runtime).toEqual({ kind: 'oci', entry })
  })

  it('decodeCapsuleHeader rejects wrong types and limits with typed errors', () => {
    const { header } = build(detBytes('types', 10), 64)
    const raw = () => decode(encodeCapsuleHeader(header)) as Record<string, Record<string, unknown>>
    const cases: Array<[path: string, value: unknown, expected: string]> = [
      ['capsuleId', 'x', 'CAPSULE_FORMAT'],
      ['owner', new Uint8Array(19), 'CAPSULE_FORMAT'],
      ['policy', [], 'CAPSULE_FORMAT'],
      ['keyguard.keyId', undefined, 'CAPSULE_FORMAT'],
      ['runtime.kind', 'docker', 'CAPSULE_FORMAT'],
      ['runtime.entry', '', 'CAPSULE_FORMAT'],
      ['runtime', { kind: 'oci', entry: 'main.wasm' }, 'CAPSULE_FORMAT'],
      ['runtime', { kind: 'oci' }, 'CAPSULE_FORMAT'],
      ['keyguard.peerId', 'p'.repeat(257), 'CAPSULE_LIMIT'],
      [
        'wrappedKeys',
        [{ scheme: 'a', keyId: 'k', ciphertext: new Uint8Array(1025) }],
        'CAPSULE_LIMIT',
      ],
      [
        'wrappedKeys',
        [{ scheme: 'a', keyId: 'k', ciphertext: new Uint8Array(0) }],
        'CAPSULE_FORMAT',
      ],
      ['receivers', {}, 'CAPSULE_FORMAT'],
      ['receivers', [{ publicKey: new Uint8Array(32), x: 1 }], 'CAPSULE_FORMAT'],
      ['policy.chainId', 0, 'CAPSULE_FORMAT'],
      ['payload.plaintextSize', '1', 'CAPSULE_FORMAT'],
    ]
    for (const [path, value, expected] of cases) {
      const h = raw()
      const keys = path.split('.')
      const last = keys.pop() as string
      const parent = keys.reduce<Record<string, unknown>>(
        (o, k) => o[k] as Record<string, unknown>,
        h,
      )
      if (value === undefined) delete parent[last]
      else parent[last] = value
      expect(
        code(() => decodeCapsuleHeader(encode(h, rfc8949EncodeOptions))),
        path,
      ).toBe(expected)
    }
    expect(code(() => decodeCapsuleHeader(new Uint8Array([0xff])))).toBe('CAPSULE_FORMAT')
    expect(code(() => decodeCapsuleHeader(encode([1, 2], rfc8949EncodeOptions)))).toBe(
      'CAPSULE_FORMAT',
    )
    expect(
      code(() => decodeCapsuleHeader(encode({ ...raw(), createdAt: 1.5 }, rfc8949EncodeOptions))),
    ).toBe('CAPSULE_FORMAT')
  })

  it('sealCapsule refuses a mismatched plaintext, key or signature', () => {
    const { header, signature, plaintext } = build(detBytes('m', 100), 64)
    expect(
      code(() =>
        sealCapsule({ header, signature, dataKey: DATA_KEY, plaintext: plaintext.subarray(1) }),
      ),
    ).toBe('INVALID_ARGUMENT')
    expect(
      code(() =>
        sealCapsule({ header, signature, dataKey: DATA_KEY, plaintext: new Uint8Array(101) }),
      ),
    ).toBe('INVALID_ARGUMENT')
    expect(code(() => sealCapsule({ header, signature, dataKey: WRONG_KEY, plaintext }))).toBe(
      'INVALID_ARGUMENT',
    )
    const other = build(detBytes('m', 100), 64, {}, OWNER_KEY).signature.slice()
    other[3] = (other[3] as number) ^ 1
    expect(
      code(() => sealCapsule({ header, signature: other, dataKey: DATA_KEY, plaintext })),
    ).toBe('CAPSULE_SIGNATURE')
    expect(
      code(() =>
        sealCapsule({ header, signature: new Uint8Array(64), dataKey: DATA_KEY, plaintext }),
      ),
    ).toBe('INVALID_ARGUMENT')
  })

  it('createCapsuleHeader validates its fields with INVALID_ARGUMENT', () => {
    const ok = { ...BASE, dataKey: DATA_KEY, plaintext: new Uint8Array(1) }
    const bad: Array<Record<string, unknown>> = [
      { owner: '0x1234' },
      { owner: '0x5FbDB2315678afecb367f032d93F642f64180aA3' }, // wrong checksum
      { chunkSize: 100 },
      { chunkSize: 32 * 1024 * 1024 },
      { runtime: { kind: 'docker' } },
      { runtime: { kind: 'wasi' } },
      { runtime: { kind: 'oci' } },
      { runtime: { kind: 'oci', entry: 'latest' } },
      { runtime: { kind: 'oci', entry: `sha256:${'A'.repeat(64)}` } },
      { receivers: [{ publicKey: new Uint8Array(31) }] },
      { wrappedKeys: [{ scheme: 'Bad Scheme', keyId: 'k', ciphertext: new Uint8Array(1) }] },
      {
        wrappedKeys: [
          { scheme: 'tpm2-rsa-oaep-sha256', keyId: 'k', ciphertext: new Uint8Array(2000) },
        ],
      },
      { keyguard: { peerId: '', keyId: 'k', wrapScheme: 'x' } },
      { policy: { chainId: 0, registry: BASE.policy.registry, policy: BASE.policy.policy } },
      { createdAt: -1 },
      { dataKey: new Uint8Array(16) },
      { plaintext: undefined },
    ]
    for (const b of bad)
      expect(
        code(() => createCapsuleHeader({ ...ok, ...b } as never)),
        JSON.stringify(b),
      ).toBe('INVALID_ARGUMENT')
    expect(
      code(() =>
        createCapsuleHeader({
          ...ok,
          commitment: { plaintextSize: 1, plaintextCommitment: new Uint8Array(32), chunkSize: 128 },
        }),
      ),
    ).toBe('INVALID_ARGUMENT')
  })

  it('openCapsule checks an expected owner', () => {
    const b = build(detBytes('o', 10), 64)
    expect(
      code(() => openCapsule(b.capsule, { dataKey: DATA_KEY, owner: BASE.policy.policy })),
    ).toBe('CAPSULE_SIGNATURE')
  })

  it('checkCommitment: false skips only the commitment', () => {
    // Chunks sealed correctly, header committing to a different plaintext.
    const header = createCapsuleHeader({
      ...BASE,
      chunkSize: 64,
      dataKey: DATA_KEY,
      plaintext: detBytes('real', 100),
    })
    const capsule = sealCapsule({
      header,
      signature: signCapsuleHeader(header, OWNER_KEY),
      dataKey: DATA_KEY,
      plaintext: detBytes('fake', 100),
    })
    expect(code(() => openCapsule(capsule, { dataKey: DATA_KEY }))).toBe('CAPSULE_INTEGRITY')
    expect(hex(openCapsule(capsule, { dataKey: DATA_KEY, checkCommitment: false }).plaintext)).toBe(
      hex(detBytes('fake', 100)),
    )
  })

  it('error messages and details never contain the data key or plaintext', () => {
    const b = build(detBytes('secret plaintext', 200), 64)
    const t = b.capsule.slice()
    t[t.length - 3] = (t[t.length - 3] as number) ^ 1
    for (const [bytes, key] of [
      [t, DATA_KEY],
      [b.capsule, WRONG_KEY],
    ] as const) {
      try {
        openCapsule(bytes, { dataKey: key })
        expect.unreachable()
      } catch (err) {
        const text = `${(err as Error).message} ${JSON.stringify((err as DigicapError).details)}`
        for (const secret of [DATA_KEY, WRONG_KEY, b.plaintext.subarray(0, 16)]) {
          expect(text).not.toContain(hex(secret))
          expect(text).not.toContain(Buffer.from(secret).toString('base64'))
        }
      }
    }
  })
})

describe('random access', () => {
  const b = build(detBytes('ra', 5 * 64 + 9), 64)
  const parsed = parseCapsuleHeader(b.capsule)

  it('opens every chunk alone', () => {
    for (let i = 0; i < parsed.chunkCount; i++) {
      const { start, end } = capsuleChunkRange(parsed, i)
      const plain = openChunk(parsed, DATA_KEY, i, b.capsule.subarray(start, end))
      expect(hex(plain)).toBe(hex(b.plaintext.subarray(i * 64, (i + 1) * 64)))
    }
  })

  it('fails with typed errors for a bad index, length, key, position or byte', () => {
    const r = capsuleChunkRange(parsed, 2)
    const chunk = b.capsule.subarray(r.start, r.end)
    expect(code(() => capsuleChunkRange(parsed, parsed.chunkCount))).toBe('INVALID_ARGUMENT')
    expect(code(() => openChunk(parsed, DATA_KEY, -1, chunk))).toBe('INVALID_ARGUMENT')
    expect(code(() => openChunk(parsed, DATA_KEY, 2, chunk.subarray(1)))).toBe('CAPSULE_TRUNCATED')
    expect(code(() => openChunk(parsed, DATA_KEY, 2, new Uint8Array(chunk.length + 1)))).toBe(
      'CAPSULE_FORMAT',
    )
    expect(code(() => openChunk(parsed, WRONG_KEY, 2, chunk))).toBe('CAPSULE_KEY')
    expect(code(() => openChunk(parsed, DATA_KEY, 3, chunk))).toBe('CAPSULE_INTEGRITY')
    const flipped = chunk.slice()
    flipped[0] = (flipped[0] as number) ^ 1
    expect(code(() => openChunk(parsed, DATA_KEY, 2, flipped))).toBe('CAPSULE_INTEGRITY')
    // The last chunk only opens as the last chunk.
    const last = capsuleChunkRange(parsed, parsed.chunkCount - 1)
    expect(
      hex(
        openChunk(
          parsed,
          DATA_KEY,
          parsed.chunkCount - 1,
          b.capsule.subarray(last.start, last.end),
        ),
      ),
    ).toBe(hex(b.plaintext.subarray(5 * 64)))
  })
})

async function collectWeb(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const out: Uint8Array[] = []
  await stream.pipeTo(new WritableStream({ write: (c) => void out.push(c) }))
  return new Uint8Array(Buffer.concat(out))
}

function sink(out: Uint8Array[]) {
  return new Writable({
    write(c, _e, cb) {
      out.push(c)
      cb()
    },
  })
}

describe('streams', () => {
  const b = build(detBytes('st', 1000), 64)
  const params = { header: b.header, signature: b.signature, dataKey: DATA_KEY }
  const pieces = (bytes: Uint8Array, n: number) => {
    const out: Uint8Array[] = []
    for (let i = 0; i < bytes.length; i += n) out.push(bytes.slice(i, i + n))
    return out
  }

  it('Web sealStream output equals sealCapsule, whatever the piece size', async () => {
    for (const n of [1, 13, 64, 65, 4096]) {
      const got = await collectWeb(
        ReadableStream.from(pieces(b.plaintext, n)).pipeThrough(sealStream(params)),
      )
      expect(hex(got), `piece ${n}`).toBe(hex(b.capsule))
    }
  })

  it('Node sealNodeStream output equals sealCapsule', async () => {
    const out: Uint8Array[] = []
    await pipeline(Readable.from(pieces(b.plaintext, 100)), sealNodeStream(params), sink(out))
    expect(hex(Buffer.concat(out))).toBe(hex(b.capsule))
  })

  it('openStream resolves the header and yields the plaintext', async () => {
    const open = openStream({ dataKey: DATA_KEY })
    const plain = collectWeb(ReadableStream.from(pieces(b.capsule, 10)).pipeThrough(open))
    expect((await open.header).header.owner).toBe(b.header.owner)
    expect(hex(await plain)).toBe(hex(b.plaintext))
  })

  it('openNodeStream resolves the header, and rejects it on a bad capsule', async () => {
    const open = openNodeStream({ dataKey: DATA_KEY })
    const out: Uint8Array[] = []
    await pipeline(Readable.from([b.capsule]), open, sink(out))
    expect((await open.header).chunkCount).toBe(16)
    expect(hex(Buffer.concat(out))).toBe(hex(b.plaintext))
    const bad = openNodeStream({ dataKey: DATA_KEY })
    await expect(pipeline(Readable.from([new Uint8Array(5)]), bad, sink([]))).rejects.toMatchObject(
      { code: 'CAPSULE_FORMAT' },
    )
    await expect(bad.header).rejects.toMatchObject({ code: 'CAPSULE_FORMAT' })
  })

  it('a sealing stream errors when the plaintext size differs from the header', async () => {
    const short = collectWeb(
      ReadableStream.from([b.plaintext.subarray(0, 999)]).pipeThrough(sealStream(params)),
    )
    await expect(short).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    const long = collectWeb(
      ReadableStream.from([b.plaintext, new Uint8Array(1)]).pipeThrough(sealStream(params)),
    )
    await expect(long).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })

  it('does not release an unauthenticated chunk', async () => {
    const t = b.capsule.slice()
    const p = parseCapsuleHeader(t)
    const r = capsuleChunkRange(p, 3)
    t[r.start] = (t[r.start] as number) ^ 1
    const out: Uint8Array[] = []
    await expect(
      pipeline(Readable.from(pieces(t, 50)), openNodeStream({ dataKey: DATA_KEY }), sink(out)),
    ).rejects.toMatchObject({
      code: 'CAPSULE_INTEGRITY',
    })
    expect(Buffer.concat(out).length).toBeLessThanOrEqual(3 * 64)
  })

  it('a streamed header with a commitment seals a stream in one pass over the data', async () => {
    const c = createPlaintextCommitment(DATA_KEY, CAPSULE_ID, 64)
    for (const p of pieces(b.plaintext, 77)) c.update(p)
    const header = createCapsuleHeader({
      ...BASE,
      chunkSize: 64,
      dataKey: DATA_KEY,
      commitment: c.digest(),
    })
    expect(hex(encodeCapsuleHeader(header))).toBe(hex(encodeCapsuleHeader(b.header)))
  })
})

describe('files', () => {
  const plaintext = detBytes('file', 3 * 64 * 1024 + 5)
  const input = join(tmp, 'plain.bin')
  writeFileSync(input, plaintext)

  it('commitPlaintextFile + sealFile + openFile round-trip and equal the buffer path', async () => {
    const commitment = await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID, {
      chunkSize: 64 * 1024,
    })
    const header = createCapsuleHeader({
      ...BASE,
      dataKey: DATA_KEY,
      commitment,
    })
    const signature = signCapsuleHeader(header, OWNER_KEY)
    const output = join(tmp, 'plain.capsule')
    const parsed = await sealFile({ header, signature, dataKey: DATA_KEY, input, output })
    expect(hex(readFileSync(output))).toBe(
      hex(sealCapsule({ header, signature, dataKey: DATA_KEY, plaintext })),
    )
    expect(parsed.chunkCount).toBe(4)
    await openFile({ input: output, output: join(tmp, 'opened.bin'), dataKey: DATA_KEY })
    expect(hex(readFileSync(join(tmp, 'opened.bin')))).toBe(hex(plaintext))
    await openFile({ input: output, output: '/dev/null', dataKey: DATA_KEY })
  })

  it('reports progress: commit every 1 MiB piece, seal every chunk, ending at the plaintext size', async () => {
    const big = detBytes('progress', 2 * 1024 * 1024 + 7)
    const bigInput = join(tmp, 'progress.bin')
    writeFileSync(bigInput, big)
    const commitSeen: number[] = []
    const commitment = await commitPlaintextFile(bigInput, DATA_KEY, CAPSULE_ID, {
      onProgress: (n) => commitSeen.push(n),
    })
    expect(commitSeen).toEqual([1024 * 1024, 2 * 1024 * 1024, 2 * 1024 * 1024 + 7])
    const header = createCapsuleHeader({
      ...BASE,
      chunkSize: 1024 * 1024,
      dataKey: DATA_KEY,
      commitment,
    })
    const signature = signCapsuleHeader(header, OWNER_KEY)
    const sealSeen: number[] = []
    const output = join(tmp, 'progress.capsule')
    await sealFile({
      header,
      signature,
      dataKey: DATA_KEY,
      input: bigInput,
      output,
      onProgress: (n) => sealSeen.push(n),
    })
    expect(sealSeen).toEqual([1024 * 1024, 2 * 1024 * 1024, 2 * 1024 * 1024 + 7])
    expect(hex(readFileSync(output))).toBe(
      hex(sealCapsule({ header, signature, dataKey: DATA_KEY, plaintext: big })),
    )
  })

  it('leaves nothing behind on failure', async () => {
    const header = createCapsuleHeader({
      ...BASE,
      chunkSize: 64 * 1024,
      dataKey: DATA_KEY,
      plaintext: plaintext.subarray(1),
    })
    const signature = signCapsuleHeader(header, OWNER_KEY)
    const before = readdirSync(tmp).sort()
    await expect(
      sealFile({ header, signature, dataKey: DATA_KEY, input, output: join(tmp, 'x.capsule') }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    const other = createCapsuleHeader({
      ...BASE,
      owner: BASE.policy.policy,
      dataKey: DATA_KEY,
      plaintext,
    })
    await expect(
      sealFile({
        header: other,
        signature: signCapsuleHeader(header, OWNER_KEY),
        dataKey: DATA_KEY,
        input,
        output: join(tmp, 'y'),
      }),
    ).rejects.toMatchObject({ code: 'CAPSULE_SIGNATURE' })
    const b = build(plaintext, 64 * 1024)
    const bad = b.capsule.slice()
    bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1
    writeFileSync(join(tmp, 'bad.capsule'), bad)
    await expect(
      openFile({
        input: join(tmp, 'bad.capsule'),
        output: join(tmp, 'bad.out'),
        dataKey: DATA_KEY,
      }),
    ).rejects.toMatchObject({
      code: 'CAPSULE_INTEGRITY',
    })
    expect(readdirSync(tmp).sort()).toEqual([...before, 'bad.capsule'].sort())
  })
})
