/**
 * Two real helia nodes on loopback: node A (the owner) puts a sealed image's blobs into helia;
 * node B reads the distribution map by its CID, fetches the blobs by bitswap from A through its
 * registry endpoint, and the real skopeo pulls the image from B byte-identical. A map that
 * points a layer's digest at other bytes makes the pull fail. Blobs of one chunk have the raw
 * CID of their OCI digest; larger ones do not (why the map exists).
 */
import { execFile } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import {
  createDigicapNode,
  type DigicapNode,
  heliaCapsuleStore,
  UNIXFS_CHUNK_SIZE,
} from '@digicap/p2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  encryptImage,
  type ImageDistribution,
  jweRecipient,
  openLayout,
  putImageBlobs,
  type RegistryServer,
  rawCidOfDigest,
  readImageDistribution,
  type Sha256Digest,
  startRegistry,
  storeBlobSource,
} from '../src/index.ts'
import { buildFixture, type Fixture, manifestOf } from './image-fixture.ts'

const run = promisify(execFile)
const skopeoCopy = (from: string, to: string) =>
  run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', from, to], {
    timeout: 120_000,
  })

describe('image blobs over helia', () => {
  let fixture: Fixture
  let work: string
  let sealed: string
  let a: DigicapNode
  let b: DigicapNode
  let registry: RegistryServer
  let manifestDigest: Sha256Digest
  let mapCid: string
  let distribution: ImageDistribution
  let layerDigests: Sha256Digest[]

  beforeAll(async () => {
    // a 3 MB layer: more than one UnixFS chunk
    fixture = await buildFixture({ extraBytes: 3_000_000 })
    work = await mkdtemp(join(tmpdir(), 'oci-helia-'))
    sealed = join(work, 'sealed')
    const owner = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const [image] = await encryptImage({
      from: fixture.dir,
      to: sealed,
      recipients: [jweRecipient([owner.publicKey.export({ type: 'spki', format: 'pem' })])],
    })
    manifestDigest = image?.digest as Sha256Digest
    layerDigests = (await manifestOf(sealed, fixture.ref)).manifest.layers.map(
      (l: { digest: Sha256Digest }) => l.digest,
    )
    a = await createDigicapNode()
    b = await createDigicapNode()
    const put = await putImageBlobs(await openLayout(sealed), heliaCapsuleStore(a.helia))
    mapCid = put.cid
    distribution = put.distribution
    await b.libp2p.dial(a.libp2p.getMultiaddrs()[0] as Parameters<typeof b.libp2p.dial>[0])
    const storeB = heliaCapsuleStore(b.helia)
    const fetched = await readImageDistribution(storeB, mapCid)
    const honest = storeBlobSource({
      store: storeB,
      distribution: fetched,
      tags: { [fixture.ref]: manifestDigest },
    })
    // the lying map: the big layer's digest points at the small layer's CID and size
    const [small, big] = layerDigests as [Sha256Digest, Sha256Digest]
    const lyingMap: ImageDistribution = {
      ...fetched,
      blobs: { ...fetched.blobs, [big]: fetched.blobs[small] as { cid: string; size: number } },
    }
    const sameSize: ImageDistribution = {
      ...fetched,
      blobs: {
        ...fetched.blobs,
        [big]: {
          cid: fetched.blobs[small]?.cid as string,
          size: fetched.blobs[big]?.size as number,
        },
      },
    }
    registry = await startRegistry({
      repositories: new Map([
        ['capsules/demo', honest],
        [
          'lying/map',
          storeBlobSource({
            store: storeB,
            distribution: lyingMap,
            tags: { [fixture.ref]: manifestDigest },
          }),
        ],
        [
          'lying/size',
          storeBlobSource({
            store: storeB,
            distribution: sameSize,
            tags: { [fixture.ref]: manifestDigest },
          }),
        ],
      ]),
      spoolDir: work,
    })
  })
  afterAll(async () => {
    await registry?.close()
    await Promise.all([a?.stop(), b?.stop()])
    await fixture?.dispose()
    await rm(work, { recursive: true, force: true })
  })

  it('a blob of one chunk has the raw CID of its OCI digest; a larger one a UnixFS root', async () => {
    const entries = Object.entries(distribution.blobs)
    expect(entries.length).toBe(4) // manifest, config, two layers
    let small = 0
    let large = 0
    for (const [digest, { cid, size }] of entries) {
      if (size <= UNIXFS_CHUNK_SIZE) {
        expect(cid).toBe(rawCidOfDigest(digest))
        small++
      } else {
        expect(cid).not.toBe(rawCidOfDigest(digest))
        large++
      }
    }
    expect([small, large]).toEqual([3, 1])
    expect(distribution.tags[fixture.ref]).toBe(manifestDigest)
  })

  it('skopeo pulls from node B the blobs B fetched from node A by bitswap, byte-identical', async () => {
    const bigCid = distribution.blobs[layerDigests[1] as Sha256Digest]?.cid as string
    expect(await heliaCapsuleStore(b.helia).has(bigCid)).toBe(false)
    const out = join(work, 'pulled')
    const host = registry.url.replace('http://', '')
    await skopeoCopy(`docker://${host}/capsules/demo:${fixture.ref}`, `oci:${out}:${fixture.ref}`)
    expect((await manifestOf(out, fixture.ref)).entry.digest).toBe(manifestDigest)
    const names = await readdir(join(out, 'blobs', 'sha256'))
    expect(names.sort()).toEqual(
      Object.keys(distribution.blobs)
        .map((d) => d.slice(7))
        .sort(),
    )
    for (const name of names) {
      const pulled = await readFile(join(out, 'blobs', 'sha256', name))
      expect(pulled.equals(await readFile(join(sealed, 'blobs', 'sha256', name)))).toBe(true)
    }
    // B holds the blob now (it came from A over bitswap: B never had the layout)
    expect(await heliaCapsuleStore(b.helia).has(bigCid)).toBe(true)
  })

  for (const name of ['lying/map', 'lying/size']) {
    it(`a distribution map pointing a layer at other bytes fails the pull (${name})`, async () => {
      const host = registry.url.replace('http://', '')
      await expect(
        skopeoCopy(`docker://${host}/${name}:${fixture.ref}`, `oci:${join(work, name)}:x`),
      ).rejects.toThrow()
      // the lie is in the blob's first (only) chunk: nothing was sent, the answer is an error
      const response = await fetch(`${registry.url}/v2/${name}/blobs/${layerDigests[1]}`)
      expect(response.status).toBe(502)
      const body = (await response.json()) as { errors: { code: string }[] }
      expect(body.errors[0]?.code).toBe('DIGEST_INVALID')
    })
  }

  it('a blob no peer holds fails after the fetch timeout with BLOB_UNKNOWN', async () => {
    const missing = `sha256:${randomBytes(32).toString('hex')}` as Sha256Digest
    const source = storeBlobSource({
      store: heliaCapsuleStore(b.helia),
      distribution: {
        ...distribution,
        blobs: { [missing]: { cid: rawCidOfDigest(missing), size: 10 } },
      },
      tags: {},
      timeoutMs: 1500,
    })
    const lonely = await startRegistry({ repositories: new Map([['capsules/missing', source]]) })
    try {
      const started = Date.now()
      const response = await fetch(`${lonely.url}/v2/capsules/missing/blobs/${missing}`)
      expect(response.status).toBe(404)
      const body = (await response.json()) as { errors: { code: string }[] }
      expect(body.errors[0]?.code).toBe('BLOB_UNKNOWN')
      expect(Date.now() - started).toBeLessThan(30_000)
    } finally {
      await lonely.close()
    }
  })

  it('refuses a distribution map that is not one', async () => {
    const store = heliaCapsuleStore(a.helia)
    for (const bad of [
      'not json',
      '{"v":2,"tags":{},"blobs":{}}',
      '{"v":1,"tags":{"v1":"sha256:xyz"},"blobs":{}}',
      `{"v":1,"tags":{},"blobs":{"sha256:${'a'.repeat(64)}":{"cid":"x","size":-1}}}`,
      `{"v":1,"tags":{},"blobs":{"md5:abc":{"cid":"x","size":1}}}`,
    ]) {
      const cid = await store.put(new TextEncoder().encode(bad))
      await expect(readImageDistribution(store, cid)).rejects.toMatchObject({ code: 'OCI_FORMAT' })
    }
  })
})
