/**
 * Image capsules end to end on real parts (anvil, keyguard with a software sealer, helia and
 * libp2p on loopback, runc, umoci, Debian's static busybox): the layer options are sealed to
 * the capsule's data key, which the keyguard releases only through a grant, on the fast path
 * or the chain path, under the same policies as data capsules. A granted run pulls the image
 * from the owner's node, opens it, runs it under runc and delivers the HPKE-sealed result to
 * the receiver; a run the policy refuses gets no key and never pulls or opens a layer.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateX25519KeyPair } from '@digicap/capsule-core'
import { environment } from '@digicap/contracts'
import { createDigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { hexlify, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildBusyboxImage, SUM_CSV_SCRIPT } from '../../oci/test/busybox-image.ts'
import {
  AccessDeniedError,
  createResultReceiver,
  type OciRunStep,
  ociSandbox,
} from '../src/index.ts'
import { makeImageCapsule } from './helpers/image-capsule.ts'
import { deployPolicyFor, resultGrants, setupWorld, type World } from './helpers/world.ts'

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
})
