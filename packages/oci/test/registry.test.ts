/**
 * The read-only distribution endpoint against the real skopeo (Debian's) and fetch: a sealed
 * image pulls byte-identical; a source serving one flipped bit, a cut or an extended blob makes
 * skopeo fail and every fetch of it fail; Range answers 206 from a checked spool; bad requests
 * get the spec's error JSON.
 */
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type BlobSource,
  encryptImage,
  jweRecipient,
  layoutBlobSource,
  openLayout,
  type RegistryServer,
  type Sha256Digest,
  startRegistry,
} from '../src/index.ts'
import { buildFixture, type Fixture, manifestOf } from './image-fixture.ts'

const run = promisify(execFile)
const skopeoCopy = (from: string, to: string) =>
  run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', from, to], {
    timeout: 120_000,
  })

/** A lying source: the same sizes, but `tamper` rewrites the bytes of one blob. */
function lyingSource(
  honest: BlobSource,
  target: string,
  tamper: (bytes: Buffer) => Buffer,
): BlobSource {
  return {
    resolveTag: (tag) => honest.resolveTag(tag),
    size: (digest) => honest.size(digest),
    open(digest, options) {
      if (digest !== target) return honest.open(digest, options)
      return (async function* () {
        const parts: Buffer[] = []
        for await (const chunk of honest.open(digest, options)) parts.push(Buffer.from(chunk))
        const bytes = tamper(Buffer.concat(parts))
        // several chunks, so the relay has passed bytes on before it finds the lie
        for (let i = 0; i < bytes.length; i += 65_536) yield bytes.subarray(i, i + 65_536)
      })()
    },
  }
}

/** The `errors` array of a distribution-spec error body. */
async function errorsOf(response: Response): Promise<{ code: string; message: string }[]> {
  return ((await response.json()) as { errors: { code: string; message: string }[] }).errors
}

const flipLastBit = (b: Buffer) => {
  const copy = Buffer.from(b)
  copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 1
  return copy
}

describe('registry endpoint', () => {
  let fixture: Fixture
  let work: string
  let sealed: string
  let registry: RegistryServer
  let layerDigests: Sha256Digest[]
  let manifestDigest: Sha256Digest
  let configDigest: Sha256Digest
  const errors: string[] = []
  const repos = new Map<string, BlobSource>()

  beforeAll(async () => {
    fixture = await buildFixture({ extraBytes: 1_500_000 })
    work = await mkdtemp(join(tmpdir(), 'oci-registry-'))
    sealed = join(work, 'sealed')
    const owner = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const [image] = await encryptImage({
      from: fixture.dir,
      to: sealed,
      recipients: [jweRecipient([owner.publicKey.export({ type: 'spki', format: 'pem' })])],
    })
    manifestDigest = image?.digest as Sha256Digest
    const { manifest } = await manifestOf(sealed, fixture.ref)
    layerDigests = manifest.layers.map((l: { digest: Sha256Digest }) => l.digest)
    const honest = layoutBlobSource(await openLayout(sealed))
    repos.set('capsules/demo', honest)
    repos.set('lying/flip', lyingSource(honest, layerDigests[1] as string, flipLastBit))
    repos.set(
      'lying/cut',
      lyingSource(honest, layerDigests[1] as string, (b) => b.subarray(0, b.length - 10)),
    )
    repos.set(
      'lying/long',
      lyingSource(honest, layerDigests[1] as string, (b) => Buffer.concat([b, Buffer.from('x')])),
    )
    repos.set('lying/manifest', lyingSource(honest, manifestDigest, flipLastBit))
    configDigest = manifest.config.digest
    repos.set('lying/config', lyingSource(honest, configDigest, flipLastBit))
    registry = await startRegistry({
      repositories: repos,
      spoolDir: work,
      onError: (e) => errors.push(String(e.details.registryCode)),
    })
  })
  afterAll(async () => {
    await registry?.close()
    await fixture?.dispose()
    await rm(work, { recursive: true, force: true })
  })

  const host = () => registry.url.replace('http://', '')

  it('skopeo copies a sealed image from it with byte-identical blobs', async () => {
    expect(registry.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    const out = join(work, 'pulled')
    await skopeoCopy(`docker://${host()}/capsules/demo:${fixture.ref}`, `oci:${out}:${fixture.ref}`)
    const { entry } = await manifestOf(out, fixture.ref)
    expect(entry.digest).toBe(manifestDigest)
    const pulled = (await readdir(join(out, 'blobs', 'sha256'))).sort()
    for (const name of pulled) {
      const a = await readFile(join(out, 'blobs', 'sha256', name))
      const b = await readFile(join(sealed, 'blobs', 'sha256', name))
      expect(a.equals(b)).toBe(true)
    }
    expect(pulled).toEqual(expect.arrayContaining(layerDigests.map((d) => d.slice(7))))
    // skopeo by digest too
    const byDigest = join(work, 'pulled-by-digest')
    await skopeoCopy(`docker://${host()}/capsules/demo@${manifestDigest}`, `oci:${byDigest}:x`)
    expect((await manifestOf(byDigest, 'x')).entry.digest).toBe(manifestDigest)
  })

  for (const name of ['lying/flip', 'lying/cut', 'lying/long', 'lying/manifest']) {
    it(`skopeo fails against a source that serves wrong bytes (${name})`, async () => {
      const out = join(work, name.replace('/', '-'))
      await expect(
        skopeoCopy(`docker://${host()}/${name}:${fixture.ref}`, `oci:${out}:${fixture.ref}`),
      ).rejects.toThrow()
      // and a plain GET never ends normally with the full body
      const target = name === 'lying/manifest' ? manifestDigest : layerDigests[1]
      const kind = name === 'lying/manifest' ? 'manifests' : 'blobs'
      const response = await fetch(`${registry.url}/v2/${name}/${kind}/${target}`)
      if (kind === 'blobs') {
        // streamed: the headers went out, then the connection is cut before the last chunk
        expect(response.status).toBe(200)
        await expect(response.arrayBuffer()).rejects.toThrow()
      } else {
        expect(response.status).toBe(502)
        expect((await errorsOf(response))[0]?.code).toBe('DIGEST_INVALID')
      }
    })
  }

  it('a lie within the first chunk of a blob is answered 502 DIGEST_INVALID, no byte sent', async () => {
    const response = await fetch(`${registry.url}/v2/lying/config/blobs/${configDigest}`)
    expect(response.status).toBe(502)
    expect((await errorsOf(response))[0]?.code).toBe('DIGEST_INVALID')
    const honest = await fetch(`${registry.url}/v2/capsules/demo/blobs/${configDigest}`)
    expect(honest.status).toBe(200)
    expect(honest.headers.get('docker-content-digest')).toBe(configDigest)
  })

  it('serves manifests by tag and by digest, and HEAD, with Docker-Content-Digest', async () => {
    const byTag = await fetch(`${registry.url}/v2/capsules/demo/manifests/${fixture.ref}`)
    expect(byTag.status).toBe(200)
    expect(byTag.headers.get('docker-content-digest')).toBe(manifestDigest)
    expect(byTag.headers.get('content-type')).toBe('application/vnd.oci.image.manifest.v1+json')
    const bytes = Buffer.from(await byTag.arrayBuffer())
    expect(
      bytes.equals(await readFile(join(sealed, 'blobs', 'sha256', manifestDigest.slice(7)))),
    ).toBe(true)
    const byDigest = await fetch(`${registry.url}/v2/capsules/demo/manifests/${manifestDigest}`)
    expect(Buffer.from(await byDigest.arrayBuffer()).equals(bytes)).toBe(true)
    const head = await fetch(`${registry.url}/v2/capsules/demo/blobs/${layerDigests[1]}`, {
      method: 'HEAD',
    })
    expect(head.status).toBe(200)
    const layer = await readFile(
      join(sealed, 'blobs', 'sha256', (layerDigests[1] as string).slice(7)),
    )
    expect(Number(head.headers.get('content-length'))).toBe(layer.length)
    const base = await fetch(`${registry.url}/v2/`)
    expect(base.status).toBe(200)
    expect(base.headers.get('docker-distribution-api-version')).toBe('registry/2.0')
  })

  it('answers Range requests with 206 from a checked copy, and 416 outside the blob', async () => {
    const digest = layerDigests[1] as string
    const layer = await readFile(join(sealed, 'blobs', 'sha256', digest.slice(7)))
    const url = `${registry.url}/v2/capsules/demo/blobs/${digest}`
    for (const [header, start, end] of [
      ['bytes=0-99', 0, 99],
      ['bytes=1000000-', 1_000_000, layer.length - 1],
      ['bytes=-17', layer.length - 17, layer.length - 1],
      [`bytes=5-${layer.length + 100}`, 5, layer.length - 1],
    ] as const) {
      const response = await fetch(url, { headers: { Range: header } })
      expect(response.status).toBe(206)
      expect(response.headers.get('content-range')).toBe(`bytes ${start}-${end}/${layer.length}`)
      const body = Buffer.from(await response.arrayBuffer())
      expect(body.equals(layer.subarray(start, end + 1))).toBe(true)
    }
    const outside = await fetch(url, { headers: { Range: `bytes=${layer.length}-` } })
    expect(outside.status).toBe(416)
    expect(outside.headers.get('content-range')).toBe(`bytes */${layer.length}`)
    // a range of a lying source's blob is refused as a whole: nothing of it is served
    const lying = await fetch(`${registry.url}/v2/lying/flip/blobs/${digest}`, {
      headers: { Range: 'bytes=0-99' },
    })
    expect(lying.status).toBe(502)
    expect((await errorsOf(lying))[0]?.code).toBe('DIGEST_INVALID')
    // no spool is left behind
    expect((await readdir(work)).filter((n) => n.startsWith('digicap-oci-registry-'))).toEqual([])
  })

  it('a client that goes away mid-blob stops the relay; the endpoint keeps serving', async () => {
    const digest = layerDigests[1] as string
    const layer = await readFile(join(sealed, 'blobs', 'sha256', digest.slice(7)))
    for (const headers of [{}, { Range: 'bytes=10-' }]) {
      const controller = new AbortController()
      const response = await fetch(`${registry.url}/v2/capsules/demo/blobs/${digest}`, {
        headers,
        signal: controller.signal,
      })
      const reader = response.body?.getReader()
      await reader?.read()
      controller.abort()
      await reader?.read().catch(() => undefined)
    }
    const again = await fetch(`${registry.url}/v2/capsules/demo/blobs/${digest}`)
    expect(Buffer.from(await again.arrayBuffer()).equals(layer)).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect((await readdir(work)).filter((n) => n.startsWith('digicap-oci-registry-'))).toEqual([])
  })

  it('answers bad requests with the distribution-spec error JSON', async () => {
    const zero = `sha256:${'0'.repeat(64)}`
    for (const [path, status, code, method] of [
      [`/v2/capsules/demo/blobs/${zero}`, 404, 'BLOB_UNKNOWN', 'GET'],
      [`/v2/capsules/demo/manifests/${zero}`, 404, 'MANIFEST_UNKNOWN', 'GET'],
      ['/v2/capsules/demo/manifests/nope', 404, 'MANIFEST_UNKNOWN', 'GET'],
      [`/v2/nobody/here/blobs/${zero}`, 404, 'NAME_UNKNOWN', 'GET'],
      ['/v2/capsules/demo/blobs/sha256:XYZ', 400, 'DIGEST_INVALID', 'GET'],
      ['/v2/capsules/demo/blobs/md5:abc', 400, 'DIGEST_INVALID', 'GET'],
      [`/v2/Caps/demo/blobs/${zero}`, 400, 'NAME_INVALID', 'GET'],
      ['/v2/capsules%2F..%2Fetc/manifests/v1', 400, 'NAME_INVALID', 'GET'],
      ['/v2/capsules/demo/manifests/-bad', 400, 'MANIFEST_INVALID', 'GET'],
      ['/v2/capsules/demo/blobs/uploads/', 404, 'UNSUPPORTED', 'POST'],
      [`/v2/capsules/demo/manifests/${fixture.ref}`, 405, 'UNSUPPORTED', 'PUT'],
      ['/etc/passwd', 404, 'UNSUPPORTED', 'GET'],
    ] as const) {
      const response = await fetch(`${registry.url}${path}`, { method })
      expect([path, response.status]).toEqual([path, method === 'POST' ? 405 : status])
      const body = { errors: await errorsOf(response) }
      expect(body.errors[0]?.code).toBe(method === 'POST' ? 'UNSUPPORTED' : code)
      expect(body.errors[0]?.message).toBeTypeOf('string')
    }
    expect(errors).toContain('BLOB_UNKNOWN')
  })
})
