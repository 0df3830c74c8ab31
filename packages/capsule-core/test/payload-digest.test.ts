import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  generatePayloadDigestVectors,
  PAYLOAD_DIGEST_VECTORS_PATH,
  parsePayloadDigestVectors,
  renderPayloadDigestVectors,
} from '../scripts/generate-payload-digest-vectors.ts'
import {
  InvalidArgumentError,
  openCapsule,
  openFileInto,
  parseCapsuleHeader,
  payloadDigest,
  prepareOpen,
} from '../src/index.ts'
import { build, DATA_KEY, detBytes } from './fixtures.ts'

const text = readFileSync(PAYLOAD_DIGEST_VECTORS_PATH, 'utf8')
const vectors = parsePayloadDigestVectors(text)

/** The definition (docs/bundle.md §7), written out plainly: no shared code with src/. */
function straightforward(data: Uint8Array, chunkSize: number): Uint8Array {
  const leaves: Buffer[] = []
  for (let off = 0; off < data.length || leaves.length === 0; off += chunkSize) {
    leaves.push(
      createHash('sha256')
        .update(data.subarray(off, off + chunkSize))
        .digest(),
    )
  }
  const sizes = Buffer.alloc(12)
  sizes.writeUInt32BE(chunkSize, 0)
  sizes.writeBigUInt64BE(BigInt(data.length), 4)
  const h = createHash('sha256').update('digicap/v2 payload digest chunked sha256').update(sizes)
  for (const leaf of leaves) h.update(leaf)
  return new Uint8Array(h.digest())
}

describe('payload digest v2 (vectors: test/payload-digest-vectors.txt)', () => {
  it('the file is what the generator writes', () => {
    expect(renderPayloadDigestVectors(generatePayloadDigestVectors())).toBe(text)
    expect(vectors.map((v) => v.name)).toEqual([
      'empty',
      'one-short-chunk',
      'one-full-chunk',
      'exact-multiple',
      'multi-chunk-with-tail',
      'default-chunk-size-short',
    ])
  })

  for (const v of vectors) {
    it(`${v.name}: the vector, payloadDigest and the opener agree with the definition`, () => {
      const expected = straightforward(v.data, v.chunkSize)
      expect(Buffer.from(v.payloadDigest).toString('hex')).toBe(
        Buffer.from(expected).toString('hex'),
      )
      expect(payloadDigest(v.data, v.chunkSize)).toEqual(expected)
      // The opener's digest, from the leaves it hashed for the commitment.
      const { capsule } = build(v.data, v.chunkSize)
      const opener = prepareOpen(parseCapsuleHeader(capsule), { dataKey: DATA_KEY })
      const parsed = parseCapsuleHeader(capsule)
      const plain = opener.write(capsule.subarray(parsed.payloadOffset))
      opener.end()
      expect(Buffer.concat(plain)).toEqual(Buffer.from(v.data))
      expect(opener.payloadDigest()).toEqual(expected)
    })
  }

  it('a large payload at the default chunk size, fed in odd pieces', () => {
    const data = detBytes('payload digest large', 3 * 1024 * 1024 + 12345)
    const { capsule } = build(data, 1024 * 1024)
    const parsed = parseCapsuleHeader(capsule)
    const opener = prepareOpen(parsed, { dataKey: DATA_KEY })
    const body = capsule.subarray(parsed.payloadOffset)
    for (let off = 0; off < body.length; off += 777_777) {
      opener.write(body.subarray(off, off + 777_777))
    }
    opener.end()
    expect(opener.payloadDigest()).toEqual(straightforward(data, 1024 * 1024))
    // Not a SHA-256 of the data (version 1): the two never meet.
    expect(opener.payloadDigest()).not.toEqual(
      new Uint8Array(createHash('sha256').update(data).digest()),
    )
  })

  it('is known only once the last chunk checked, and only with the commitment check', () => {
    const { capsule } = build(detBytes('two chunks', 100), 64)
    const parsed = parseCapsuleHeader(capsule)
    const opener = prepareOpen(parsed, { dataKey: DATA_KEY })
    opener.write(capsule.subarray(parsed.payloadOffset, parsed.payloadOffset + 64 + 16))
    expect(() => opener.payloadDigest()).toThrow(/once the last chunk/)
    const unchecked = prepareOpen(parsed, { dataKey: DATA_KEY, checkCommitment: false })
    unchecked.write(capsule.subarray(parsed.payloadOffset))
    unchecked.end()
    expect(() => unchecked.payloadDigest()).toThrow(InvalidArgumentError)
    expect(() => unchecked.payloadDigest()).toThrow(/commitment check/)
    expect(openCapsule(capsule, { dataKey: DATA_KEY }).plaintext.length).toBe(100)
  })

  it('is not given for a payload refused for trailing bytes, nor after the opener was destroyed', () => {
    const { capsule } = build(detBytes('two chunks', 100), 64)
    const parsed = parseCapsuleHeader(capsule)
    const trailing = prepareOpen(parsed, { dataKey: DATA_KEY })
    const extended = new Uint8Array([...capsule.subarray(parsed.payloadOffset), 0])
    expect(() => trailing.write(extended)).toThrow(/trailing|after the last chunk/i)
    expect(() => trailing.payloadDigest()).toThrow(InvalidArgumentError)
    const destroyed = prepareOpen(parsed, { dataKey: DATA_KEY })
    destroyed.write(capsule.subarray(parsed.payloadOffset))
    destroyed.end()
    expect(destroyed.payloadDigest()).toHaveLength(32)
    destroyed.destroy()
    expect(() => destroyed.payloadDigest()).toThrow(InvalidArgumentError)
  })

  it('refuses a chunk size a header could not hold', () => {
    expect(() => payloadDigest(new Uint8Array(3), 100)).toThrow(InvalidArgumentError)
    expect(() => payloadDigest(new Uint8Array(3), 32)).toThrow(InvalidArgumentError)
  })
})

describe('openFileInto: a capsule file into a file its caller owns, with the payload digest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'digicap-open-into-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const data = detBytes('open into', 5 * 64 * 1024 + 999)
  const { capsule } = build(data, 64 * 1024)
  const parsed = parseCapsuleHeader(capsule)
  const input = join(dir, 'capsule')
  writeFileSync(input, capsule)

  async function openInto(threads: number, path = input) {
    const out = join(dir, `out-${threads}-${Math.random()}`)
    const [i, o] = await Promise.all([open(path, 'r'), open(out, 'wx', 0o600)])
    try {
      const digest = await openFileInto({ input: i, output: o, parsed, dataKey: DATA_KEY, threads })
      return { digest, bytes: readFileSync(out) }
    } finally {
      await Promise.all([i.close(), o.close()])
    }
  }

  it('on lanes and on one thread: the plaintext at offset 0 and the digest of the definition', async () => {
    const expected = straightforward(data, 64 * 1024)
    for (const threads of [1, 2, 3]) {
      const { digest, bytes } = await openInto(threads)
      expect(bytes.equals(data)).toBe(true)
      expect(digest).toEqual(expected)
    }
  })

  it('a chunk altered: the exact chunk named on lanes as on one thread', async () => {
    const bad = capsule.slice()
    const at = parsed.payloadOffset + 3 * (64 * 1024 + 16) + 7
    bad[at] = (bad[at] as number) ^ 1
    const path = join(dir, 'bad-capsule')
    writeFileSync(path, bad)
    for (const threads of [1, 2]) {
      await expect(openInto(threads, path)).rejects.toMatchObject({
        code: 'CAPSULE_INTEGRITY',
        details: { chunk: 3, reason: 'chunk-authentication' },
      })
    }
  })
})
