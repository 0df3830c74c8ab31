/**
 * Interop with the real ocicrypt, through the real skopeo (Debian's): an image Digicap
 * encrypts to a jwe recipient decrypts with `skopeo copy --decryption-key` to the
 * byte-identical layers, and an image skopeo encrypts with `--encryption-key jwe:pub.pem`
 * decrypts with this package's strict decryptor to the byte-identical layers. RSA and EC keys.
 */
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  decryptImage,
  encryptImage,
  jweRecipient,
  jweUnwrapper,
  MEDIA_TYPE_LAYER_ENC,
  MEDIA_TYPE_LAYER_GZIP_ENC,
} from '../src/index.ts'
import { blobOf, buildFixture, type Fixture, manifestOf } from './image-fixture.ts'

const run = promisify(execFile)

async function skopeo(...args: string[]) {
  return run('skopeo', ['--insecure-policy', ...args], { timeout: 120_000 })
}

function keyPairs() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  return [
    { name: 'RSA-2048', key: rsa },
    { name: 'EC P-384', key: ec },
  ].map(({ name, key }) => ({
    name,
    publicPem: key.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  }))
}

describe('ocicrypt interop through skopeo', () => {
  let fixture: Fixture
  let work: string
  beforeAll(async () => {
    fixture = await buildFixture()
    work = await mkdtemp(join(tmpdir(), 'oci-interop-'))
  })
  afterAll(async () => {
    await fixture.dispose()
    await rm(work, { recursive: true, force: true })
  })

  for (const pair of keyPairs()) {
    it(`Digicap → skopeo: a jwe (${pair.name}) image decrypts with skopeo --decryption-key to the same layers`, async () => {
      const sealed = join(work, `sealed-${pair.name.replace(/\W/g, '')}`)
      const plain = join(work, `skopeo-plain-${pair.name.replace(/\W/g, '')}`)
      await encryptImage({
        from: fixture.dir,
        to: sealed,
        recipients: [jweRecipient([pair.publicPem])],
      })
      const { manifest: enc } = await manifestOf(sealed, fixture.ref)
      expect(enc.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual([
        MEDIA_TYPE_LAYER_GZIP_ENC,
        MEDIA_TYPE_LAYER_ENC,
      ])
      const keyFile = join(work, `${pair.name.replace(/\W/g, '')}-private.pem`)
      await writeFile(keyFile, pair.privatePem, { mode: 0o600 })
      await skopeo(
        'copy',
        '--decryption-key',
        keyFile,
        `oci:${sealed}:${fixture.ref}`,
        `oci:${plain}:${fixture.ref}`,
      )
      const { manifest } = await manifestOf(plain, fixture.ref)
      expect(manifest.layers.map((l: { digest: string }) => l.digest)).toEqual(
        fixture.layers.map((l) => l.digest),
      )
      for (const layer of fixture.layers) {
        expect(Buffer.from(await blobOf(plain, layer.digest)).equals(layer.bytes)).toBe(true)
      }
      // skopeo does not accept the wrong key either
      const other = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const wrongFile = join(work, 'wrong.pem')
      await writeFile(wrongFile, other.privateKey.export({ type: 'pkcs8', format: 'pem' }))
      await expect(
        skopeo(
          'copy',
          '--decryption-key',
          wrongFile,
          `oci:${sealed}:${fixture.ref}`,
          `oci:${plain}-x:${fixture.ref}`,
        ),
      ).rejects.toThrow()
    })

    it(`skopeo → Digicap: an image skopeo encrypts to jwe:${pair.name} decrypts with the strict decryptor to the same layers`, async () => {
      const sealed = join(work, `skopeo-sealed-${pair.name.replace(/\W/g, '')}`)
      const plain = join(work, `digicap-plain-${pair.name.replace(/\W/g, '')}`)
      const pubFile = join(work, `${pair.name.replace(/\W/g, '')}-public.pem`)
      await writeFile(pubFile, pair.publicPem)
      await skopeo(
        'copy',
        '--encryption-key',
        `jwe:${pubFile}`,
        `oci:${fixture.dir}:${fixture.ref}`,
        `oci:${sealed}:${fixture.ref}`,
      )
      const { manifest: enc } = await manifestOf(sealed, fixture.ref)
      for (const layer of enc.layers) {
        expect(layer.mediaType.endsWith('+encrypted')).toBe(true)
        expect(layer.annotations['org.opencontainers.image.enc.keys.jwe']).toBeTypeOf('string')
      }
      const [result] = await decryptImage({
        from: sealed,
        to: plain,
        unwrappers: [jweUnwrapper([pair.privatePem])],
      })
      const { manifest } = await manifestOf(plain, fixture.ref)
      const digests = manifest.layers.map((l: { digest: string }) => l.digest)
      expect(result?.layers.map((l) => l.to)).toEqual(digests)
      // The gzip layer comes back byte-identical. skopeo gzips the uncompressed layer before
      // encrypting it (and ocicrypt records the uncompressed digest): it comes back as that
      // gzip stream, whose decompression is byte-identical to the original tar.
      expect(digests[0]).toBe(fixture.layers[0]?.digest)
      expect(
        Buffer.from(await blobOf(plain, digests[0])).equals(
          fixture.layers[0]?.bytes ?? new Uint8Array(),
        ),
      ).toBe(true)
      expect(manifest.layers[1].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip')
      expect(
        gunzipSync(await blobOf(plain, digests[1])).equals(
          fixture.layers[1]?.bytes ?? new Uint8Array(),
        ),
      ).toBe(true)
      for (const layer of manifest.layers) {
        expect(layer.mediaType.endsWith('+encrypted')).toBe(false)
        expect(
          Object.keys(layer.annotations ?? {}).some((k) =>
            k.startsWith('org.opencontainers.image.enc.'),
          ),
        ).toBe(false)
      }
    })
  }
})
