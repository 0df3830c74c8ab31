/**
 * The layer cipher and the strict decryptor: ocicrypt's options JSON, a round trip through
 * many stream chunks, and every way to break a layer — flipped, truncated, extended, reordered,
 * wrong HMAC, wrong descriptor digest, wrong private digest — each a typed error, with no
 * decrypted byte out and nothing left in the spool directory.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { pipeline } from 'node:stream/promises'
import { gzipSync, zstdCompressSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  decodePrivateOptions,
  decodePublicOptions,
  type EncryptedLayer,
  encodePrivateOptions,
  encodePublicOptions,
  layerEncryptor,
  OciFormatError,
  OciIntegrityError,
  OciLimitError,
  OciTruncatedError,
  OciUnsupportedError,
  openLayer,
} from '../src/index.ts'

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}` as const

async function encrypt(plain: Uint8Array): Promise<{ ciphertext: Buffer } & EncryptedLayer> {
  const enc = layerEncryptor({ digest: sha(plain) })
  const chunks: Buffer[] = []
  await pipeline(Readable.from([plain]), enc.stream, async (out: AsyncIterable<Buffer>) => {
    for await (const c of out) chunks.push(c)
  })
  return { ciphertext: Buffer.concat(chunks), ...enc.result() }
}

/** Splits bytes into 64 KiB pieces, as a file stream would. */
function pieces(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < bytes.length; i += 65536) out.push(bytes.subarray(i, i + 65536))
  return out
}

describe('layer options JSON (ocicrypt blockcipher.go)', () => {
  it('writes the fields Go writes, in its order, and reads them back', () => {
    const symmetricKey = new Uint8Array(32).fill(1)
    const nonce = new Uint8Array(16).fill(2)
    const digest = sha(new Uint8Array())
    const json = new TextDecoder().decode(encodePrivateOptions({ symmetricKey, digest, nonce }))
    expect(json).toBe(
      `{"symkey":"${Buffer.from(symmetricKey).toString('base64')}","digest":"${digest}","cipheroptions":{"nonce":"AgICAgICAgICAgICAgICAg=="}}`,
    )
    expect(decodePrivateOptions(new TextEncoder().encode(json))).toEqual({
      symmetricKey,
      digest,
      nonce,
    })
    const pub = encodePublicOptions({ cipher: 'AES_256_CTR_HMAC_SHA256', hmac: new Uint8Array(32) })
    expect(new TextDecoder().decode(pub)).toBe(
      `{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"${Buffer.alloc(32).toString('base64')}","cipheroptions":{}}`,
    )
  })

  it('refuses malformed options with typed errors', () => {
    const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o))
    const good = {
      symkey: Buffer.alloc(32).toString('base64'),
      digest: sha(new Uint8Array()),
      cipheroptions: { nonce: Buffer.alloc(16).toString('base64') },
    }
    expect(() =>
      decodePrivateOptions(enc({ ...good, symkey: Buffer.alloc(31).toString('base64') })),
    ).toThrow(OciFormatError)
    expect(() => decodePrivateOptions(enc({ ...good, digest: 'sha512:00' }))).toThrow(
      OciFormatError,
    )
    expect(() => decodePrivateOptions(enc({ ...good, cipheroptions: {} }))).toThrow(OciFormatError)
    expect(() =>
      decodePrivateOptions(enc({ ...good, symkey: `${good.symkey.slice(0, -2)}!=` })),
    ).toThrow(OciFormatError)
    expect(() => decodePrivateOptions(new TextEncoder().encode('{'))).toThrow(OciFormatError)
    expect(() => decodePrivateOptions(new Uint8Array(70_000))).toThrow(OciLimitError)
    const pub = {
      cipher: 'AES_256_CTR_HMAC_SHA256',
      hmac: Buffer.alloc(32).toString('base64'),
      cipheroptions: {},
    }
    expect(decodePublicOptions(enc(pub)).hmac).toHaveLength(32)
    expect(decodePublicOptions(enc({ ...pub, cipheroptions: null })).hmac).toHaveLength(32)
    expect(() => decodePublicOptions(enc({ ...pub, cipher: 'AES_128_GCM' }))).toThrow(
      OciUnsupportedError,
    )
    // ocicrypt would take a nonce from here, where the HMAC does not cover it: refused.
    expect(() => decodePublicOptions(enc({ ...pub, cipheroptions: { nonce: 'AAAA' } }))).toThrow(
      OciFormatError,
    )
  })
})

describe('strict layer decryption', () => {
  let spoolDir: string
  let plain: Uint8Array
  let layer: Awaited<ReturnType<typeof encrypt>>
  beforeAll(async () => {
    spoolDir = await mkdtemp(join(tmpdir(), 'oci-spool-test-'))
    plain = new Uint8Array(randomBytes(1_000_003))
    layer = await encrypt(plain)
  })
  afterAll(() => rm(spoolDir, { recursive: true, force: true }))

  const open = (ciphertext: Uint8Array, extra: Partial<Parameters<typeof openLayer>[1]> = {}) =>
    openLayer(pieces(ciphertext), {
      private: layer.private,
      public: layer.public,
      expected: { digest: layer.digest, size: layer.size },
      spoolDir,
      ...extra,
    })

  it('round-trips a 1 MB layer through 64 KiB chunks and leaves no spool behind', async () => {
    expect(layer.size).toBe(plain.length)
    expect(layer.digest).toBe(sha(layer.ciphertext))
    const verified = await open(layer.ciphertext)
    expect(verified.digest).toBe(sha(plain))
    expect(verified.size).toBe(plain.length)
    expect(Buffer.from(await buffer(verified.stream())).equals(plain)).toBe(true)
    // The spool goes when the stream closes, in the background: waited for (a loaded box took
    // more than the 50 ms this once waited), up to a bound that fails if it never goes.
    const deadline = Date.now() + 10_000
    while ((await readdir(spoolDir)).length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(await readdir(spoolDir)).toEqual([])
    expect(() => verified.stream()).toThrow()
  })

  it('is AES-256-CTR with the 16-byte nonce as counter block and HMAC-SHA256 over the ciphertext', async () => {
    const { createCipheriv, createHmac } = await import('node:crypto')
    const c = createCipheriv('aes-256-ctr', layer.private.symmetricKey, layer.private.nonce)
    const expected = Buffer.concat([c.update(plain), c.final()])
    expect(expected.equals(layer.ciphertext)).toBe(true)
    const mac = createHmac('sha256', layer.private.symmetricKey).update(expected).digest()
    expect(mac.equals(layer.public.hmac)).toBe(true)
  })

  const broken: [string, () => Uint8Array, unknown, string | undefined][] = [
    [
      'a flipped bit in the last byte',
      () => {
        const c = Buffer.from(layer.ciphertext)
        c[c.length - 1] = (c[c.length - 1] ?? 0) ^ 1
        return c
      },
      OciIntegrityError,
      'hmac',
    ],
    [
      'two 16-byte blocks swapped',
      () => {
        const c = Buffer.from(layer.ciphertext)
        const a = Buffer.from(c.subarray(0, 16))
        c.copy(c, 0, 4096, 4112)
        a.copy(c, 4096)
        return c
      },
      OciIntegrityError,
      'hmac',
    ],
    ['the last byte cut', () => layer.ciphertext.subarray(0, -1), OciTruncatedError, undefined],
    [
      'a byte appended',
      () => Buffer.concat([layer.ciphertext, Buffer.from([0])]),
      OciIntegrityError,
      'size',
    ],
  ]
  for (const [name, make, type, reason] of broken) {
    it(`refuses ${name} before any decrypted byte, and removes the spool`, async () => {
      const error = await open(make()).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(type)
      if (reason) expect((error as OciIntegrityError).details.reason).toBe(reason)
      expect(await readdir(spoolDir)).toEqual([])
    })
  }

  it('catches a cut layer by its HMAC when no descriptor size is given', async () => {
    const error = await open(layer.ciphertext.subarray(0, 65536), { expected: undefined }).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(OciIntegrityError)
    expect((error as OciIntegrityError).details.reason).toBe('hmac')
  })

  it('refuses a wrong HMAC, a wrong descriptor digest and a wrong private digest', async () => {
    const wrongHmac = await open(layer.ciphertext, {
      public: { ...layer.public, hmac: new Uint8Array(32) },
    }).catch((e: unknown) => e)
    expect((wrongHmac as OciIntegrityError).details.reason).toBe('hmac')
    const wrongBlob = await open(layer.ciphertext, {
      expected: { digest: sha(new Uint8Array([1])), size: layer.size },
    }).catch((e: unknown) => e)
    expect((wrongBlob as OciIntegrityError).details.reason).toBe('blob-digest')
    const wrongPlain = await open(layer.ciphertext, {
      private: { ...layer.private, digest: sha(new Uint8Array([2])) },
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    }).catch((e: unknown) => e)
    expect(wrongPlain).toBeInstanceOf(OciIntegrityError)
    expect((wrongPlain as OciIntegrityError).details.reason).toBe('plain-digest')
    expect(await readdir(spoolDir)).toEqual([])
  })

  it('refuses a layer over maxSize while spooling', async () => {
    await expect(
      open(layer.ciphertext, { maxSize: 100_000, expected: undefined }),
    ).rejects.toBeInstanceOf(OciLimitError)
    expect(await readdir(spoolDir)).toEqual([])
  })

  for (const [name, compress] of [
    ['gzip', gzipSync],
    ['zstd', zstdCompressSync],
  ] as const) {
    it(`accepts the uncompressed digest for a layer skopeo compressed (${name}) before encrypting`, async () => {
      const tar = new Uint8Array(randomBytes(5000))
      const compressed = compress(tar)
      const enc = layerEncryptor({ digest: sha(tar) })
      const out = await buffer(Readable.from([compressed]).pipe(enc.stream))
      const r = enc.result()
      const ok = await openLayer([out], {
        private: r.private,
        public: r.public,
        mediaType: `application/vnd.oci.image.layer.v1.tar+${name}`,
        spoolDir,
      })
      expect(ok.digest).toBe(sha(compressed))
      await ok.dispose()
      // without the compressed media type, the digest does not match the decryption
      await expect(
        openLayer([out], { private: r.private, public: r.public, spoolDir }),
      ).rejects.toBeInstanceOf(OciIntegrityError)
      // and a compressed layer whose decompression is not the recorded digest is refused
      const other = layerEncryptor({ digest: sha(new Uint8Array(1)) })
      const out2 = await buffer(Readable.from([compressed]).pipe(other.stream))
      await expect(
        openLayer([out2], {
          ...other.result(),
          mediaType: `application/vnd.oci.image.layer.v1.tar+${name}`,
          spoolDir,
        }),
      ).rejects.toBeInstanceOf(OciIntegrityError)
    })
  }
})
