/**
 * The promises of SPEC §4–§8 under attack: nothing is handed out while the ciphertext is still
 * arriving, the spool is private (0700 directory, 0600 file), every documented limit holds,
 * and malformed layouts and annotations are typed errors.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  checkIndex,
  createLayout,
  decryptJwe,
  encryptJwe,
  jwePublicKey,
  layerEncryptor,
  OciFormatError,
  OciIntegrityError,
  OciLimitError,
  OciUnsupportedError,
  openLayer,
  parseDigicapPayload,
  publicOptionsOf,
  unwrapPrivateOptions,
} from '../src/index.ts'

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}` as const

describe('strict decryptor, seen from outside', () => {
  let spoolDir: string
  beforeAll(async () => {
    spoolDir = await mkdtemp(join(tmpdir(), 'oci-limits-'))
  })
  afterAll(() => rm(spoolDir, { recursive: true, force: true }))

  it('hands out nothing while the ciphertext is still arriving, and spools privately', async () => {
    const plain = new Uint8Array(randomBytes(300_000))
    const enc = layerEncryptor({ digest: sha(plain) })
    const ciphertext = await buffer(Readable.from([plain]).pipe(enc.stream))
    const options = enc.result()
    let release!: (last: Uint8Array) => void
    const lastChunk = new Promise<Uint8Array>((resolve) => {
      release = resolve
    })
    let modes: { dir: number; file: number } | undefined
    async function* source() {
      yield ciphertext.subarray(0, ciphertext.length - 100)
      // while the decryptor waits for the rest: the spool is private, nothing is returned yet
      const [dir] = await readdir(spoolDir)
      const path = join(spoolDir, dir ?? '')
      modes = {
        dir: (await stat(path)).mode & 0o777,
        file: (await stat(join(path, 'layer'))).mode & 0o777,
      }
      yield await lastChunk
    }
    let settled = false
    const opening = openLayer(source(), {
      private: options.private,
      public: options.public,
      spoolDir,
    }).finally(() => {
      settled = true
    })
    await new Promise((r) => setTimeout(r, 200))
    expect(settled).toBe(false)
    expect(modes).toEqual({ dir: 0o700, file: 0o600 })
    // the attacker's last 100 bytes are not the real ones: refused, spool removed
    release(new Uint8Array(100))
    await expect(opening).rejects.toBeInstanceOf(OciIntegrityError)
    expect(await readdir(spoolDir)).toEqual([])
  })
})

describe('limits and malformed inputs', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })

  it('refuses an oversized Digicap payload', () => {
    expect(() => parseDigicapPayload(new Uint8Array(16 * 1024 + 1))).toThrow(OciLimitError)
  })

  it('refuses an oversized recipient annotation and too many wrapped copies', async () => {
    const unwrapper = { protocol: 'jwe', unwrap: async () => new Uint8Array() }
    const key = 'org.opencontainers.image.enc.keys.jwe'
    await expect(
      unwrapPrivateOptions({ [key]: 'A'.repeat(1024 * 1024 + 4) }, [unwrapper]),
    ).rejects.toBeInstanceOf(OciLimitError)
    await expect(
      unwrapPrivateOptions({ [key]: Array(65).fill('AAAA').join(',') }, [unwrapper]),
    ).rejects.toBeInstanceOf(OciLimitError)
    await expect(
      unwrapPrivateOptions({ [key]: 'not base64!' }, [unwrapper]),
    ).rejects.toBeInstanceOf(OciFormatError)
  })

  it('refuses an oversized JWE and one with too many recipients', () => {
    expect(() => decryptJwe('x'.repeat(256 * 1024 + 1), [rsa.privateKey])).toThrow(OciLimitError)
    const pub = jwePublicKey(rsa.publicKey)
    expect(() => encryptJwe(new Uint8Array(1), Array(65).fill(pub))).toThrow(OciLimitError)
    const many = JSON.parse(encryptJwe(new Uint8Array(1), [pub, pub]))
    many.recipients = Array(65).fill(many.recipients[0])
    expect(() => decryptJwe(JSON.stringify(many), [rsa.privateKey])).toThrow(OciFormatError)
  })

  it('refuses an encrypted layer without pubopts, and pubopts that are not base64 JSON', () => {
    expect(() => publicOptionsOf({})).toThrow(OciFormatError)
    expect(() => publicOptionsOf({ 'org.opencontainers.image.enc.pubopts': 'e30' })).toThrow(
      OciFormatError,
    )
    expect(() =>
      publicOptionsOf({
        'org.opencontainers.image.enc.pubopts': Buffer.from('{}').toString('base64'),
      }),
    ).toThrow(OciUnsupportedError)
  })

  it('refuses malformed indexes, digests and oversized JSON blobs', async () => {
    const good = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: sha(new Uint8Array()),
      size: 0,
    }
    expect(checkIndex({ schemaVersion: 2, manifests: [good] }).manifests).toHaveLength(1)
    expect(() => checkIndex({ schemaVersion: 1, manifests: [] })).toThrow(OciFormatError)
    expect(() =>
      checkIndex({ schemaVersion: 2, manifests: [{ ...good, digest: good.digest.toUpperCase() }] }),
    ).toThrow(OciFormatError)
    expect(() => checkIndex({ schemaVersion: 2, manifests: [{ ...good, size: -1 }] })).toThrow(
      OciFormatError,
    )
    expect(() =>
      checkIndex({ schemaVersion: 2, manifests: [{ ...good, annotations: { a: 1 } }] }),
    ).toThrow(OciFormatError)
    const dir = await mkdtemp(join(tmpdir(), 'oci-limits-layout-'))
    try {
      const layout = await createLayout(dir)
      await expect(layout.readJson({ ...good, size: 4 * 1024 * 1024 + 1 })).rejects.toBeInstanceOf(
        OciLimitError,
      )
      await expect(layout.readJson(good)).rejects.toBeInstanceOf(OciFormatError) // missing blob
      await writeFile(join(dir, 'index.json'), '{"schemaVersion":2,')
      await expect(layout.readIndex()).rejects.toBeInstanceOf(OciFormatError)
      await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}')
      const { openLayout } = await import('../src/index.ts')
      await expect(openLayout(dir)).rejects.toBeInstanceOf(OciFormatError)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
