/**
 * `executor-node run <image capsule CID>` through the real CLI (its own process) on real parts:
 * anvil, a keyguard on helia/libp2p loopback, swtpm as the executor's TPM, runc, umoci and
 * Debian's static busybox. The executor is `init --oci --tcti` and registered with its
 * attestation record; the capsule's policy asks for `attested()`, so the keyguard challenges
 * the executor's TPM (before-quote: registered boot PCRs, PCR 23 at reset, this grant and key)
 * before it releases the data key that opens the layers. A host whose boot PCRs changed since
 * it registered is refused: no key, no layer opened, nothing run.
 */
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { generateX25519KeyPair } from '@digicap/capsule-core'
import { attested, connectDigicap } from '@digicap/contracts'
import { createResultReceiver } from '@digicap/executor'
import { generateMnemonic } from '@digicap/keyguard'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { type Swtpm, startSwtpm } from '@digicap/tpm/testing'
import { hexlify, parseEther, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeImageCapsule } from '../../../packages/executor/test/helpers/image-capsule.ts'
import {
  deployPolicyFor,
  resultCapsules,
  resultGrants,
  setupWorld,
  type World,
} from '../../../packages/executor/test/helpers/world.ts'
import { buildBusyboxImage, SUM_CSV_SCRIPT } from '../../../packages/oci/test/busybox-image.ts'
import { createExecutorNode, initExecutorNode } from '../src/executor-node.ts'
import { runCli } from './helpers/cli.ts'

const CSV = new TextEncoder().encode('region,amount\nnorth,120\nsouth,80\neast,25\nwest,75\n')

let w: World
let tpm: Swtpm
let dir: string
let execDir: string
let image: Awaited<ReturnType<typeof buildBusyboxImage>>
let attestedPolicy: string
let recvNode: DigicapNode
const recvKeys = generateX25519KeyPair()
let receiver: ReturnType<ReturnType<typeof createResultReceiver>>

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'exnode-image-'))
  execDir = join(dir, 'exec')
  ;[w, tpm, image, recvNode] = await Promise.all([
    setupWorld(),
    startSwtpm(),
    buildBusyboxImage({
      files: { 'app/sum.sh': SUM_CSV_SCRIPT },
      config: { Cmd: ['/bin/sh', '/app/sum.sh'] },
    }),
    createDigicapNode(),
  ])
  attestedPolicy = await deployPolicyFor(w, attested())
  receiver = createResultReceiver({ privateKey: recvKeys.privateKey })({
    libp2p: recvNode.libp2p,
    store: heliaCapsuleStore(recvNode.helia),
    grants: resultGrants(w),
    capsules: resultCapsules(w),
  })
  await receiver.start()
  // init and register in-process (the library face of the same commands; cli.test.ts runs
  // them as processes): only `run` needs to be the CLI here, and each process costs seconds
  const { address } = await initExecutorNode({
    dataDir: execDir,
    contracts: {
      capsuleRegistry: w.addresses.capsuleRegistry,
      nodeRegistry: w.addresses.nodeRegistry,
      accessController: w.addresses.accessController,
    },
    flags: {
      'rpc-url': w.anvil.rpcUrl,
      oci: true,
      tcti: tpm.tcti,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      'keyguard-addr': [w.kg.multiaddrs()[0] as string],
    },
    mnemonic: generateMnemonic(),
  })
  const funder = w.anvil.signers[6] as Wallet
  await (await funder.sendTransaction({ to: address, value: parseEther('1') })).wait()
  const en = await createExecutorNode(execDir, {}, { listen: [], executor: false })
  try {
    await en.register({ stake: parseEther('0.01') })
  } finally {
    await en.stop()
  }
  // the attestation record of the swtpm's AK and boot PCRs is what the chain holds
  const registered = await connectDigicap(w.addresses, w.anvil.provider).nodeRegistry.getNode(
    address,
  )
  expect(registered.attestationKeyHash).not.toBe(hexlify(new Uint8Array(32)))
}, 120_000)

afterAll(async () => {
  await receiver?.stop()
  await recvNode?.stop()
  await w?.stop()
  await tpm?.stop()
  await image?.dispose()
  await rm(dir, { recursive: true, force: true })
})

/**
 * The CLI's temp folder, holding its OCI state directory (`DIGICAP_OCI_STATE_DIR`; the default
 * is `/run/digicap-oci` for root, ADR 0075), so its runc state is this file's alone: the
 * "no container" check below must not see another suite's runs (CI runs suites side by side).
 */
const childTmp = () => join(dir, 'tmp')

const runImage = async (cid: string) => {
  await mkdir(childTmp(), { recursive: true })
  return runCli(['run', cid, '--fast', '--no-fallback', '--json', '--data-dir', execDir], {
    DIGICAP_BOOTSTRAP: recvNode.multiaddrs()[0] as string,
    TMPDIR: childTmp(),
    DIGICAP_OCI_STATE_DIR: join(childTmp(), 'digicap-oci'),
  })
}

/** runc processes of this file's CLI runs (their `--root` is under its temp folder). */
async function ourContainers(): Promise<string[]> {
  const ps = await promisify(execFile)('ps', ['-eo', 'args'])
  return [...ps.stdout.matchAll(/runc --root (\S+) .*digicap-[0-9a-f]{16}.*/g)]
    .filter(([, root]) => root?.startsWith(childTmp()))
    .map(([line]) => line)
}

describe('executor-node run <image capsule> (CLI, runc, swtpm)', () => {
  it('attested(): challenged, granted, layers opened, run under runc; the receiver gets the result', async () => {
    const capsule = await makeImageCapsule(w, {
      image: image.dir,
      input: CSV,
      policy: attestedPolicy,
      receivers: [{ publicKey: recvKeys.publicKey, peerId: recvNode.peerId }],
    })
    const r = await runImage(capsule.cid)
    expect(r.code, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout)
    expect(doc.path).toBe('fast')
    expect(doc.result).toBe('rows=4 sum=300\n')
    for (const stage of ['fetch', 'verify', 'grant', 'release', 'open', 'run', 'deliver']) {
      expect(r.stderr).toContain(`✓ ${stage}`)
    }
    expect(doc.deliveries[0].status).toBe('delivered')
    const got = await receiver.next(20_000)
    expect(new TextDecoder().decode(got.output)).toBe('rows=4 sum=300\n')
    expect(got.grantId).toBe(doc.grantId)
    // the run's measurement was taken out of PCR 23 again at clean-up
    const pcr23 = await promisify(execFile)('tpm2_pcrread', ['sha256:23'], {
      env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti },
    })
    expect(pcr23.stdout).toMatch(/23 *: *0x0{64}/i)
    expect(doc.cleanup.failures).toEqual([])
    // the run's runc state was under the CLI's own temp folder, where the check below looks
    expect(await readdir(childTmp())).toContain('digicap-oci')
  }, 90_000)

  it('a host whose boot PCRs changed since it registered is refused: no layer key, nothing run', async () => {
    // the executor's own checks pass (PCR 23 at reset); only the keyguard's quote check sees it
    await promisify(execFile)('tpm2_pcrextend', [`7:sha256=${'ab'.repeat(32)}`], {
      env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti },
    })
    const capsule = await makeImageCapsule(w, {
      image: image.dir,
      input: CSV,
      policy: attestedPolicy,
    })
    const r = await runImage(capsule.cid)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('error[ACCESS_DENIED]')
    expect(r.stderr).toMatch(/not-attested|QUOTE_BOOT_PCRS/)
    // the key was never released: no layer opened, no container
    expect(r.stderr).not.toContain('✓ release')
    expect(r.stderr).not.toContain('✓ run')
    expect(await ourContainers()).toEqual([])
  }, 90_000)
})
