/**
 * Image capsules end to end on real parts (anvil, keyguard with a software sealer, helia and
 * libp2p on loopback, runc, umoci, Debian's static busybox): the layer options are sealed to
 * the capsule's data key, which the keyguard releases only through a grant, on the fast path
 * or the chain path, under the same policies as data capsules. A granted run pulls the image
 * from the owner's node, opens it, runs it under runc and delivers the HPKE-sealed result to
 * the receiver; a run the policy refuses gets no key and never pulls or opens a layer.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { generateX25519KeyPair } from '@digicap/capsule-core'
import { environment } from '@digicap/contracts'
import { readImageDistribution, type Sha256Digest } from '@digicap/oci'
import { createDigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { hexlify, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildBusyboxImage, SUM_CSV_SCRIPT } from '../../oci/test/busybox-image.ts'
import {
  AccessDeniedError,
  createResultReceiver,
  ethersExecutorChain,
  type OciRunStep,
  ociSandbox,
} from '../src/index.ts'
import { serveImageRegistry } from '../src/node/index.ts'
import { makeImageCapsule } from './helpers/image-capsule.ts'
import {
  deployPolicyFor,
  resultCapsules,
  resultGrants,
  setupWorld,
  type World,
} from './helpers/world.ts'

const CSV = new TextEncoder().encode('region,amount\nnorth,120\nsouth,80\neast,25\nwest,75\n')
const dec = new TextDecoder()

let w: World
let tmpRoot: string
let image: Awaited<ReturnType<typeof buildBusyboxImage>>
const steps: OciRunStep[] = []

beforeAll(async () => {
  tmpRoot = await mkdtemp(join(tmpdir(), 'exec-image-runs-'))
  image = await buildBusyboxImage({
    files: { 'app/sum.sh': SUM_CSV_SCRIPT },
    config: { Cmd: ['/bin/sh', '/app/sum.sh'] },
  })
  w = await setupWorld({
    tmpRoot,
    extraSandboxes: (exec) => ({
      oci: ociSandbox({ store: heliaCapsuleStore(exec.helia), onStep: (s) => steps.push(s) }),
    }),
  })
}, 120_000)

afterAll(async () => {
  await w?.stop()
  await image?.dispose()
  await rm(tmpRoot, { recursive: true, force: true })
})

describe('image capsules through grants (runc)', () => {
  it('fast path and chain path: granted, pulled, opened, run; the receiver gets the sealed result', async () => {
    const recvNode = await createDigicapNode()
    const keys = generateX25519KeyPair()
    const receiver = createResultReceiver({ privateKey: keys.privateKey })({
      libp2p: recvNode.libp2p,
      store: heliaCapsuleStore(recvNode.helia),
      grants: resultGrants(w),
      capsules: resultCapsules(w),
    })
    await receiver.start()
    await recvNode.libp2p.dial(w.exec.libp2p.getMultiaddrs()[0]!)
    try {
      const capsule = await makeImageCapsule(w, {
        image: image.dir,
        input: CSV,
        receivers: [{ publicKey: keys.publicKey, peerId: recvNode.peerId }],
      })
      for (const fast of [true, false]) {
        steps.length = 0
        const res = await w.executor.runCapsule(capsule.cid, { fast })
        expect(res.path).toBe(fast ? 'fast' : 'chain')
        expect(dec.decode(res.result)).toBe('rows=4 sum=300\n')
        const got = await receiver.next(10_000)
        expect(dec.decode(got.output)).toBe('rows=4 sum=300\n')
        expect(got.grantId).toBe(res.grantId)
        expect(got.executor).toBe(w.executorWallet.address)
        expect(steps.map((s) => s.step)).toEqual([
          'scratch',
          'pull',
          'decrypt',
          'unpack',
          'container',
        ])
        expect(steps[0]?.detail?.tmpfs).toBe(true)
        // clean-up measured as for data capsules: the workspace is gone, keys zeroed
        expect(res.cleanup.failures).toEqual([])
        expect(res.cleanup.buffersZeroed).toBeGreaterThanOrEqual(3)
        expect(await readdir(tmpRoot)).toEqual([])
      }
    } finally {
      await receiver.stop()
      await recvNode.stop()
    }
  }, 180_000)

  it('a run the policy refuses gets no layer key: no pull, no decryption, on either path', async () => {
    const policy = await deployPolicyFor(w, environment(hexlify(randomBytes(32))))
    const capsule = await makeImageCapsule(w, { image: image.dir, input: CSV, policy })
    steps.length = 0
    const fast = w.executor.runCapsule(capsule.cid, { fast: true })
    await expect(fast).rejects.toBeInstanceOf(AccessDeniedError)
    await expect(fast).rejects.toMatchObject({ path: 'fast', reason: 'WRONG_ENVIRONMENT' })
    const chain = w.executor.runCapsule(capsule.cid, { fast: false })
    await expect(chain).rejects.toMatchObject({ code: 'ACCESS_DENIED', path: 'chain' })
    // the sandbox was never reached: no blob pulled, no layer option opened
    expect(steps).toEqual([])
    expect(await readdir(tmpRoot)).toEqual([])
  }, 120_000)

  it("the node's /v2 endpoint: skopeo pulls the capsule's image by bitswap from the owner; a peer's flipped bit is rejected", async () => {
    const capsule = await makeImageCapsule(w, { image: image.dir, input: CSV })
    const chain = ethersExecutorChain({ addresses: w.addresses, signer: w.executorWallet })
    await w.exec.libp2p.dial(w.kg.libp2p.getMultiaddrs()[0]!)
    const work = await mkdtemp(join(tmpdir(), 'image-registry-'))
    const pull = (reference: string, to: string) =>
      promisify(execFile)(
        'skopeo',
        [
          '--insecure-policy',
          'copy',
          '--src-tls-verify=false',
          `docker://${reference}`,
          `oci:${to}:v1`,
        ],
        { timeout: 120_000 },
      )
    const honest = await serveImageRegistry(
      { store: w.execStore, chain },
      { cid: capsule.cid, image: capsule.distribution },
    )
    const attacker = await createDigicapNode()
    try {
      await pull(honest.reference, join(work, 'out'))
      const index = JSON.parse(await readFile(join(work, 'out', 'index.json'), 'utf8'))
      // the image the header commits to, byte for byte (skopeo checks every digest)
      expect(index.manifests[0].digest).toBe(capsule.manifestDigest)
      expect(honest.manifestDigest).toBe(capsule.manifestDigest)
      // a peer offers a map whose layer is the real one with one bit flipped
      const map = await readImageDistribution(w.kgStore, capsule.distribution)
      const manifest = JSON.parse(
        await readFile(
          join(work, 'out', 'blobs', 'sha256', capsule.manifestDigest.slice(7)),
          'utf8',
        ),
      )
      const layer = manifest.layers[0].digest as Sha256Digest
      const parts: Uint8Array[] = []
      for await (const c of w.kgStore.get(map.blobs[layer]!.cid)) parts.push(c)
      const flipped = Buffer.concat(parts)
      flipped[flipped.length >> 1]! ^= 1
      const attackerStore = heliaCapsuleStore(attacker.helia)
      const lying = {
        ...map,
        blobs: {
          ...map.blobs,
          [layer]: { cid: await attackerStore.put(flipped), size: flipped.length },
        },
      }
      const lyingCid = await attackerStore.put(new TextEncoder().encode(JSON.stringify(lying)))
      await w.exec.libp2p.dial(attacker.libp2p.getMultiaddrs()[0]!)
      const lyingRegistry = await serveImageRegistry(
        { store: w.execStore, chain },
        { cid: capsule.cid, image: lyingCid },
      )
      try {
        await expect(pull(lyingRegistry.reference, join(work, 'bad'))).rejects.toThrow()
      } finally {
        await lyingRegistry.close()
      }
      // a capsule that is not registered on chain is never served
      await expect(
        serveImageRegistry({ store: w.execStore, chain }, { cid: lyingCid, image: lyingCid }),
      ).rejects.toMatchObject({ code: 'CAPSULE_FETCH' })
    } finally {
      await honest.close()
      await attacker.stop()
      await rm(work, { recursive: true, force: true })
    }
  }, 180_000)

  it("podman pulls from the node's /v2 endpoint through a mirror config: the committed manifest and blobs, then stops at the sealed layer", async () => {
    const capsule = await makeImageCapsule(w, { image: image.dir, input: CSV })
    const chain = ethersExecutorChain({ addresses: w.addresses, signer: w.executorWallet })
    await w.exec.libp2p.dial(w.kg.libp2p.getMultiaddrs()[0]!)
    const work = await mkdtemp(join(tmpdir(), 'image-podman-'))
    const registry = await serveImageRegistry(
      { store: w.execStore, chain },
      { cid: capsule.cid, image: capsule.distribution },
    )
    try {
      // an operator's mirror config: a name of their choosing, served by the executor node
      const [location, path] = [
        registry.reference.slice(0, registry.reference.indexOf('/')),
        registry.reference.slice(registry.reference.indexOf('/') + 1),
      ]
      const conf = join(work, 'registries.conf')
      await writeFile(
        conf,
        `unqualified-search-registries = []\n[[registry]]\nprefix = "capsules.digicap.invalid"\nlocation = "${location}"\ninsecure = true\n`,
      )
      const podman = (...args: string[]) =>
        promisify(execFile)(
          'podman',
          [
            '--root',
            join(work, 'storage'),
            '--runroot',
            join(work, 'run'),
            '--storage-driver',
            'vfs',
            ...args,
          ],
          { timeout: 120_000, env: { ...process.env, CONTAINERS_REGISTRIES_CONF: conf } },
        )
      const pulled = await podman(
        '--log-level=debug',
        'pull',
        `capsules.digicap.invalid/${path}`,
      ).then(
        () => undefined,
        (e: { stderr?: string }) => String(e.stderr),
      )
      // podman 4.3 has no --decryption-key on pull: it fetched the committed manifest and the
      // sealed layer from the node, and could not unpack a layer only a grant opens
      const map = await readImageDistribution(w.kgStore, capsule.distribution)
      const parts: Uint8Array[] = []
      const entry = map.blobs[capsule.manifestDigest as Sha256Digest]
      for await (const c of w.kgStore.get(entry!.cid)) parts.push(c)
      const manifest = JSON.parse(Buffer.concat(parts).toString('utf8'))
      const layer = manifest.layers[0]
      expect(layer.mediaType).toMatch(/\+encrypted$/)
      expect(pulled).toBeDefined()
      expect(pulled).toContain(
        `GET http://${location}/v2/${path.replace(':capsule', '')}/manifests/capsule`,
      )
      expect(pulled).toContain(`blobs/${layer.digest}`)
      expect(pulled).toContain(`adding layer with blob "${layer.digest}"`)
      expect(pulled).toContain('invalid tar header')
      expect((await podman('images', '--quiet')).stdout.trim()).toBe('')
    } finally {
      await registry.close()
      await rm(work, { recursive: true, force: true })
    }
  }, 180_000)
})
