/**
 * Whole images in OCI layouts: encrypt with both recipients, decrypt with either, manifests
 * rewritten with new digests; then an attacker's edits of the layout — a flipped bit in a
 * layer, a cut layer, a manifest that no longer matches index.json, layer options swapped
 * between layers, a missing blob — each a typed error, with no plain layer written and no
 * spool left. A decrypted image unpacks with the real umoci.
 */
import { execFile } from 'node:child_process'
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import { cp, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { toHex } from '@digicap/capsule-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  decryptImage,
  digicapRecipient,
  digicapUnwrapper,
  encryptImage,
  jweRecipient,
  jweUnwrapper,
  OciFormatError,
  OciIntegrityError,
  OciKeyError,
  OciTruncatedError,
  OciUnsupportedError,
} from '../src/index.ts'
import { blobOf, buildFixture, type Fixture, manifestOf } from './image-fixture.ts'

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const publicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()
const privatePem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
const capsuleId = toHex(new Uint8Array(randomBytes(32)))
const dataKey = new Uint8Array(randomBytes(32))
const wrappedKeys = [
  { scheme: 'software-rsa-oaep-sha256', keyId: 'test', ciphertext: new Uint8Array(256) },
]
const run = promisify(execFile)
const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`

describe('encryptImage / decryptImage', () => {
  let fixture: Fixture
  let work: string
  let sealed: string
  let spoolDir: string
  beforeAll(async () => {
    fixture = await buildFixture({ extraBytes: 200_000, zstd: true })
    work = await mkdtemp(join(tmpdir(), 'oci-image-'))
    spoolDir = await mkdtemp(join(tmpdir(), 'oci-image-spool-'))
    sealed = join(work, 'sealed')
    const progress: { index: number; total: number }[] = []
    const [result] = await encryptImage({
      from: fixture.dir,
      to: sealed,
      recipients: [
        digicapRecipient({ capsuleId, dataKey, wrappedKeys }),
        jweRecipient([publicPem]),
      ],
      onLayer: ({ index, total }) => progress.push({ index, total }),
    })
    expect(result?.layers.map((l) => l.from)).toEqual(fixture.layers.map((l) => l.digest))
    expect(progress).toEqual([0, 1, 2].map((index) => ({ index, total: 3 })))
  })
  afterAll(async () => {
    await fixture.dispose()
    await rm(work, { recursive: true, force: true })
    await rm(spoolDir, { recursive: true, force: true })
  })

  /** A copy of the sealed layout to damage. */
  async function copy(name: string) {
    const dir = join(work, name)
    await cp(sealed, dir, { recursive: true })
    return dir
  }
  const jwe = () => [jweUnwrapper([privatePem])]

  it('rewrites the manifest: new digests, +encrypted media types, both recipients, config untouched', async () => {
    const { entry, manifest } = await manifestOf(sealed, fixture.ref)
    const { entry: plainEntry, manifest: plainManifest } = await manifestOf(
      fixture.dir,
      fixture.ref,
    )
    expect(entry.digest).not.toBe(plainEntry.digest)
    expect(sha(await blobOf(sealed, entry.digest))).toBe(entry.digest)
    expect(manifest.config).toEqual(plainManifest.config)
    manifest.layers.forEach(
      (
        layer: {
          mediaType: string
          digest: string
          size: number
          annotations: Record<string, string>
        },
        i: number,
      ) => {
        expect(layer.mediaType).toBe(`${fixture.layers[i]?.mediaType}+encrypted`)
        expect(layer.size).toBe(fixture.layers[i]?.bytes.length)
        expect(Object.keys(layer.annotations).sort()).toEqual([
          'org.opencontainers.image.enc.keys.jwe',
          'org.opencontainers.image.enc.keys.provider.digicap',
          'org.opencontainers.image.enc.pubopts',
        ])
      },
    )
  })

  for (const [name, unwrappers] of [
    ['jwe', jwe],
    ['provider.digicap', () => [digicapUnwrapper({ capsuleId, dataKey: async () => dataKey })]],
  ] as const) {
    it(`decrypts with the ${name} recipient alone to the original manifest`, async () => {
      const out = join(work, `plain-${name}`)
      const [result] = await decryptImage({
        from: sealed,
        to: out,
        unwrappers: unwrappers(),
        spoolDir,
      })
      const { entry } = await manifestOf(out, fixture.ref)
      // same layers, media types and no annotations: the manifest bytes come back identical
      expect(entry.digest).toBe(fixture.manifestDigest)
      expect(result?.digest).toBe(fixture.manifestDigest)
      expect(await readdir(spoolDir)).toEqual([])
    })
  }

  it('a decrypted image unpacks with the real umoci to the original files', async () => {
    // umoci 0.4.7 (Debian) reads no zstd layers: an image of the gzip and tar layers only
    const small = await buildFixture({ extraBytes: 1000 })
    const smallSealed = join(work, 'small-sealed')
    await encryptImage({
      from: small.dir,
      to: smallSealed,
      recipients: [digicapRecipient({ capsuleId, dataKey, wrappedKeys })],
    })
    await small.dispose()
    const out = join(work, 'plain-umoci')
    await decryptImage({
      from: smallSealed,
      to: out,
      unwrappers: [digicapUnwrapper({ capsuleId, dataKey: async () => dataKey })],
    })
    const bundle = join(work, 'bundle')
    await run('umoci', ['unpack', '--rootless', '--image', `${out}:${fixture.ref}`, bundle], {
      timeout: 60_000,
    })
    expect(await readFile(join(bundle, 'rootfs', 'data', 'in.csv'), 'utf8')).toBe('a,1\nb,2\nc,3\n')
    expect(await readFile(join(bundle, 'rootfs', 'app', 'run.sh'), 'utf8')).toContain(
      '/data/in.csv',
    )
    expect(JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')).process.args).toEqual([
      '/app/run.sh',
    ])
  })

  /** Decryption fails; the damaged layer's plaintext never reaches the target, no spool is left. */
  async function expectRefused(dir: string, type: unknown, reason?: string, damaged = 1) {
    const out = join(work, `out-${randomBytes(4).toString('hex')}`)
    const error = await decryptImage({ from: dir, to: out, unwrappers: jwe(), spoolDir }).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(type)
    if (reason) expect((error as OciIntegrityError).details.reason).toBe(reason)
    const written = await readdir(join(out, 'blobs', 'sha256')).catch(() => [])
    expect(written).not.toContain(fixture.layers[damaged]?.digest.slice(7))
    const index = JSON.parse(
      await readFile(join(out, 'index.json'), 'utf8').catch(() => '{"manifests":[]}'),
    )
    expect(index.manifests).toEqual([])
    expect(await readdir(spoolDir)).toEqual([])
  }

  it('refuses a flipped bit in a layer blob', async () => {
    const dir = await copy('flipped')
    const { manifest } = await manifestOf(dir, fixture.ref)
    const path = join(dir, 'blobs', 'sha256', manifest.layers[1].digest.slice(7))
    const bytes = await readFile(path)
    bytes[1000] = (bytes[1000] ?? 0) ^ 0x10
    await writeFile(path, bytes)
    await expectRefused(dir, OciIntegrityError, 'hmac')
  })

  it('refuses a cut layer blob', async () => {
    const dir = await copy('cut')
    const { manifest } = await manifestOf(dir, fixture.ref)
    await truncate(join(dir, 'blobs', 'sha256', manifest.layers[1].digest.slice(7)), 5000)
    await expectRefused(dir, OciTruncatedError)
  })

  it('refuses a manifest edited without updating index.json', async () => {
    const dir = await copy('manifest')
    const { entry } = await manifestOf(dir, fixture.ref)
    const path = join(dir, 'blobs', 'sha256', entry.digest.slice(7))
    const manifest = JSON.parse(await readFile(path, 'utf8'))
    manifest.layers.reverse()
    await writeFile(path, JSON.stringify(manifest))
    await expectRefused(dir, OciIntegrityError, 'blob-digest')
  })

  it('refuses layer options swapped between two layers (manifest re-hashed by the attacker)', async () => {
    const dir = await copy('swapped')
    const { entry, manifest } = await manifestOf(dir, fixture.ref)
    const [a, b] = manifest.layers
    ;[a.annotations, b.annotations] = [b.annotations, a.annotations]
    const bytes = new TextEncoder().encode(JSON.stringify(manifest))
    const digest = sha(bytes)
    await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes)
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'))
    index.manifests[0] = { ...entry, digest, size: bytes.length }
    await writeFile(join(dir, 'index.json'), JSON.stringify(index))
    await expectRefused(dir, OciIntegrityError, 'hmac')
  })

  it('refuses a layout that lacks a layer blob', async () => {
    const dir = await copy('missing')
    const { manifest } = await manifestOf(dir, fixture.ref)
    await rm(join(dir, 'blobs', 'sha256', manifest.layers[0].digest.slice(7)))
    await expectRefused(dir, OciFormatError, undefined, 0)
  })

  it('refuses a layer an attacker encrypted to the same public key once the committed manifest digest is given', async () => {
    // jwe authenticates nobody: the attacker seals their own layer to the owner's public key
    // and rewrites manifest and index consistently
    const dir = await copy('forged')
    const evil = await buildFixture({ extraBytes: 1000 })
    const evilSealed = join(work, 'evil-sealed')
    await encryptImage({ from: evil.dir, to: evilSealed, recipients: [jweRecipient([publicPem])] })
    await evil.dispose()
    await cp(join(evilSealed, 'blobs'), join(dir, 'blobs'), { recursive: true })
    await cp(join(evilSealed, 'index.json'), join(dir, 'index.json'))
    const { entry: committed } = await manifestOf(sealed, fixture.ref)
    // without the commitment the forgery decrypts: it is a valid ocicrypt image
    await decryptImage({ from: dir, to: join(work, 'forged-out'), unwrappers: jwe() })
    const error = await decryptImage({
      from: dir,
      to: join(work, 'forged-out-2'),
      unwrappers: jwe(),
      manifestDigest: committed.digest,
    }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OciIntegrityError)
    expect((error as OciIntegrityError).details.reason).toBe('manifest-digest')
    // the genuine image passes with its commitment
    const [ok] = await decryptImage({
      from: sealed,
      to: join(work, 'committed-out'),
      unwrappers: jwe(),
      manifestDigest: committed.digest,
    })
    expect(ok?.digest).toBe(fixture.manifestDigest)
  })

  it('refuses without a matching key, without a layout, and re-encryption', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    await expect(
      decryptImage({
        from: sealed,
        to: join(work, 'x'),
        unwrappers: [jweUnwrapper([other.privateKey])],
      }),
    ).rejects.toBeInstanceOf(OciKeyError)
    await expect(
      decryptImage({ from: sealed, to: join(work, 'y'), unwrappers: [] }),
    ).rejects.toBeInstanceOf(OciKeyError)
    await expect(
      decryptImage({ from: work, to: join(work, 'z'), unwrappers: jwe() }),
    ).rejects.toBeInstanceOf(OciFormatError)
    await expect(
      encryptImage({
        from: sealed,
        to: join(work, 'again'),
        recipients: [jweRecipient([publicPem])],
      }),
    ).rejects.toBeInstanceOf(OciUnsupportedError)
    await expect(
      decryptImage({ from: sealed, to: join(work, 'w'), unwrappers: jwe(), ref: 'nope' }),
    ).rejects.toBeInstanceOf(OciFormatError)
  })

  it('refuses a source layer that differs from its descriptor when encrypting', async () => {
    const dir = join(work, 'bad-source')
    await cp(fixture.dir, dir, { recursive: true })
    await writeFile(
      join(dir, 'blobs', 'sha256', fixture.layers[0]!.digest.slice(7)),
      'not the layer',
    )
    await expect(
      encryptImage({
        from: dir,
        to: join(work, 'bad-out'),
        recipients: [jweRecipient([publicPem])],
      }),
    ).rejects.toBeInstanceOf(OciTruncatedError)
  })
})
