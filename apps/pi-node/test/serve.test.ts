/**
 * `pi-node serve` as a child process with its keyguard, against a real anvil, a real swtpm and
 * a real executor-side libp2p node built here (the protocol codecs, not the executor package):
 * chain-path release, fast-path release, code-capsule bundle, status, SIGTERM and resume.
 */
import { existsSync, readdirSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  decodeHpkeSealed,
  generateX25519KeyPair,
  hpkeOpen,
  openFile,
  parseCapsuleHeader,
  privateKeySigner,
} from '@digicap/capsule-core'
import { connectDigicap, type DigicapContracts } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { decodeBundle } from '@digicap/executor'
import { createKeyStore, deriveOwnerIdentity, tpm2Sealer, unwrapDataKey } from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import {
  ethersCapsuleRegistrar,
  gossipAnnouncer,
  parseKeyguardCard,
  publicKeyWrapper,
  sealAndPublish,
  solcPolicyDeployer,
} from '@digicap/owner'
import { createDigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import {
  addressToBytes,
  fastPathProtocol,
  handle,
  keyReleaseProtocol,
  type ReleaseAck,
  request,
  signAccessRequest,
} from '@digicap/protocol'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { getBytes, hexlify, keccak256, parseEther, randomBytes, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CliDaemon, type Doc, runCli, runJson, startCli } from './helpers/cli.ts'

function startServe(env: Record<string, string>, args: string[] = []): Promise<CliDaemon> {
  return startCli(['serve', '--json', '--status-interval-ms', '200', ...args], env)
}

async function until(cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * The executor side: a real libp2p node that opens key releases with its ephemeral keys. A
 * release none of them opens is answered `open-failed`, or, while `silent`, never answered (a
 * push the keyguard keeps retrying: a non-`ok` ack closes the grant, keyguard ADR 0072).
 */
async function executorSide() {
  const node = await createDigicapNode({})
  const keys = new Map<string, Uint8Array>()
  const received = new Map<string, Uint8Array>()
  const side = { node, keys, received, silent: false, pushes: 0 }
  await handle(node.libp2p, keyReleaseProtocol, async (release): Promise<ReleaseAck> => {
    side.pushes++
    for (const priv of keys.values()) {
      try {
        const key = await hpkeOpen(priv, decodeHpkeSealed(release.hpke), release.grantId)
        received.set(hexlify(release.grantId), key)
        return { grantId: release.grantId, status: 'ok' }
      } catch {
        // not this key
      }
    }
    if (side.silent) await new Promise(() => {})
    return { grantId: release.grantId, status: 'open-failed' }
  })
  return side
}

describe('pi-node serve with the keyguard (real anvil, swtpm, libp2p)', () => {
  let anvil: Anvil
  let tpm: Swtpm
  let dir: string
  let dataDir: string
  let env: Record<string, string>
  let owner: string
  let c: DigicapContracts
  let config: Doc
  let executor: Wallet
  let exec: Awaited<ReturnType<typeof executorSide>>
  let sealed: Doc
  let plaintext: Buffer
  let daemon: CliDaemon | undefined
  let mnemonic: string

  beforeAll(async () => {
    ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
    dir = await mkdtemp(join(tmpdir(), 'pi-node-serve-'))
    dataDir = join(dir, 'node')
    env = { DIGICAP_DATA_DIR: dataDir, DIGICAP_RPC_URL: anvil.rpcUrl }
    const init = await runJson(
      [
        'init',
        '--deploy',
        '--tcti',
        tpm.tcti,
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--json',
        '--show-mnemonic-in-json',
      ],
      env,
    )
    expect(init.code).toBe(0)
    mnemonic = init.mnemonic
    owner = init.owner.address
    config = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8'))
    expect(config.startBlock).toBeGreaterThan(0)
    executor = anvil.signers[2] as Wallet
    c = connectDigicap(config.contracts, executor)
    exec = await executorSide()
    await (
      await c.nodeRegistry.register(
        exec.node.libp2p.peerId.toMultihash().bytes,
        hexlify(randomBytes(32)),
        1,
        {
          value: parseEther('0.01'),
        },
      )
    ).wait()
  })

  afterAll(async () => {
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGTERM')
      await daemon.exited
    }
    await exec?.node.stop()
    await Promise.all([anvil?.stop(), tpm?.stop()])
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  const pendingKeys = new Map<string, Uint8Array>()
  function ephemeral(register = true): string {
    const kp = generateX25519KeyPair()
    const pub = hexlify(kp.publicKey)
    if (register) exec.keys.set(pub, kp.privateKey)
    else pendingKeys.set(pub, kp.privateKey)
    return pub
  }

  async function requestAccess(capsuleId: string, ephemeralKey: string): Promise<string> {
    const tx = await c.accessController.requestAccess(
      capsuleId,
      ephemeralKey,
      hexlify(randomBytes(32)),
      '0x',
    )
    const receipt = await tx.wait()
    const log = receipt?.logs
      .map((l) => c.accessController.interface.parseLog(l))
      .find((p) => p?.name === 'AccessGranted')
    return String(log?.args[0]).toLowerCase()
  }

  async function open(capsulePath: string, dataKey: Uint8Array, name: string): Promise<Buffer> {
    const out = join(dir, name)
    await openFile({ input: capsulePath, output: out, dataKey, owner: owner as `0x${string}` })
    return readFile(out)
  }

  it('seal --runtime quickjs: the plaintext is the executor bundle {entry, files, data}', async () => {
    const code = join(dir, 'app')
    await mkdir(join(code, 'lib'), { recursive: true })
    await writeFile(
      join(code, 'main.js'),
      'import { f } from "./lib/f.js"; digicap.output(f(digicap.input()))',
    )
    await writeFile(join(code, 'lib', 'f.js'), 'export const f = (x) => x')
    const data = join(dir, 'input.csv')
    await writeFile(data, 'a,b\n1,2\n')
    const r = await runJson(
      [
        'seal',
        data,
        '--policy',
        'maxRuns(2)',
        '--runtime',
        'quickjs',
        '--entry',
        'main.js',
        '--code',
        code,
        '--memory-mb',
        '32',
        '--time-ms',
        '2000',
        '--json',
      ],
      env,
    )
    expect(r.code).toBe(0)
    const header = parseCapsuleHeader(await readFile(r.capsulePath)).header
    expect(header.runtime).toEqual({
      kind: 'quickjs',
      entry: 'main.js',
      memoryLimit: 32 * 1024 * 1024,
      timeLimit: 2000,
    })
    const record = await (await createKeyStore(join(dataDir, 'keys'))).get(r.capsuleId)
    const dataKey = await unwrapDataKey(record?.wrappedKeys ?? [], tpm2Sealer({ tcti: tpm.tcti }))
    const bundle = decodeBundle(await open(r.capsulePath, dataKey, 'bundle.bin'))
    expect(bundle.entry).toBe('main.js')
    expect(Object.keys(bundle.files).sort()).toEqual(['lib/f.js', 'main.js'])
    expect(Buffer.from(bundle.files['lib/f.js'] ?? []).toString()).toBe('export const f = (x) => x')
    expect(Buffer.from(bundle.data).toString()).toBe('a,b\n1,2\n')
    // The plaintext bundle is gone once the seal ends (a killed seal's: at the next open).
    expect(
      readdirSync(join(dataDir, 'capsules', r.capsuleId)).filter((f) => f.includes('bundle')),
    ).toEqual([])

    const bad = await runJson(
      [
        'seal',
        data,
        '--policy',
        'maxRuns(1)',
        '--runtime',
        'wasi',
        '--entry',
        'main.wasm',
        '--code',
        code,
        '--json',
      ],
      env,
    )
    expect(bad.code).toBe(1)
    expect(bad.error.code).toBe('BUNDLE_FORMAT')
  })

  it('serve reports the keyguard; chain path: requestAccess on anvil → HPKE release to the executor → capsule opens', async () => {
    plaintext = Buffer.from(randomBytes(200_000))
    const file = join(dir, 'data.bin')
    await writeFile(file, plaintext)
    sealed = await runJson(['seal', file, '--policy', 'maxRuns(5)', '--json'], env)
    expect(sealed.code).toBe(0)

    daemon = await startServe(env, ['--announce', '/dns4/pi.example.org/tcp/4001'])
    expect(daemon.ready.multiaddrs).toContain(
      `/dns4/pi.example.org/tcp/4001/p2p/${daemon.ready.peerId}`,
    )
    expect(daemon.ready).toMatchObject({
      ok: true,
      command: 'serve',
      keyguard: {
        running: true,
        chain: {
          chainId: '31337',
          confirmations: 0,
          accessController: config.contracts.accessController,
        },
        releases: { pending: 0, inFlight: 0 },
        fastPath: { enabled: true },
        sealer: { kind: 'tpm2' },
      },
    })
    // The executor connects to the keyguard; identify gives the keyguard its addresses.
    const addr = (daemon.ready.multiaddrs as string[]).find((m) => m.includes('/127.0.0.1/'))
    await exec.node.libp2p.dial(multiaddr(addr as string))

    const grantId = await requestAccess(sealed.capsuleId, ephemeral())
    await until(() => exec.received.has(grantId))
    const opened = await open(
      sealed.capsulePath,
      exec.received.get(grantId) as Uint8Array,
      'chain.bin',
    )
    expect(opened.equals(plaintext)).toBe(true)
    // Logged once the executor acknowledged, which can come just after the key is opened here.
    await until(() => daemon?.stderr().includes('"message":"keyguard released"') === true)

    await until(async () => {
      const s = (await runJson(['status', '--json'], env)).status
      return s.daemon.keyguard?.counters.released === 1
    })
    const human = await runCli(['status'], env).then((r) => r.stdout)
    expect(human).toMatch(
      /keyguard {4}running, chain 31337 head \d+ cursor \d+ \(0 confirmations\)/,
    )
    expect(human).toContain('released 1, failed 0')
    expect(human).toContain('fast path on')
  })

  it('fast path: a signed AccessRequest to the daemon gets the key inline', async () => {
    const eph = ephemeral()
    const jobParams = new Uint8Array(0)
    const req = signAccessRequest(
      {
        capsuleId: getBytes(sealed.capsuleId),
        executor: addressToBytes(executor.address as `0x${string}`),
        ephemeralKey: getBytes(eph),
        measurement: randomBytes(32),
        jobParamsHash: getBytes(keccak256(jobParams)),
        fee: 0n,
        nonce: randomBytes(32),
        expiry: BigInt(Math.floor(Date.now() / 1000) + 120),
        jobParams,
      },
      { chainId: 31337n, verifyingContract: config.contracts.accessController },
      getBytes(executor.privateKey),
    )
    const res = await request(
      exec.node.libp2p,
      peerIdFromString(daemon?.ready.peerId),
      fastPathProtocol,
      req,
    )
    expect(res.status).toBe('granted')
    if (res.status !== 'granted' || res.keyRelease === undefined) throw new Error('no key')
    const dataKey = await hpkeOpen(
      exec.keys.get(eph) as Uint8Array,
      decodeHpkeSealed(res.keyRelease.hpke),
      res.grantId,
    )
    expect((await open(sealed.capsulePath, dataKey, 'fast.bin')).equals(plaintext)).toBe(true)
    // The daemon records the audit grant on chain with the keyguard operator's key (GrantNotFound until then).
    await until(() =>
      c.accessController.getGrant(hexlify(res.grantId)).then(
        (g) => g.fastPath === true,
        () => false,
      ),
    )

    // Replayed: the same signed request is refused with a typed reason.
    const again = await request(
      exec.node.libp2p,
      peerIdFromString(daemon?.ready.peerId),
      fastPathProtocol,
      req,
    )
    expect(again).toMatchObject({ status: 'refused', reasonCode: 'replayed' })
  })

  it('a capsule sealed on a laptop with only the card from `status` is adopted by serve and released', async () => {
    // The laptop: the owner's words (for its account) and the keyguard's public card, nothing else.
    const { card, recoveryPublicKey } = parseKeyguardCard(
      (await runJson(['status', '--json'], env)).status.card,
    )
    const identity = await deriveOwnerIdentity(mnemonic)
    const wallet = new Wallet(hexlify(identity.ethereumPrivateKey), anvil.provider)
    const laptop = await createDigicapNode({})
    try {
      const file = join(dir, 'laptop.bin')
      const laptopPlaintext = Buffer.from(randomBytes(50_000))
      await writeFile(file, laptopPlaintext)
      const addr = (daemon?.ready.multiaddrs as string[]).find((m) => m.includes('/127.0.0.1/'))
      const r = await sealAndPublish(
        {
          input: file,
          output: join(dir, 'laptop.capsule'),
          policy: 'maxRuns(2)',
          chainId: 31337,
          registry: config.contracts.capsuleRegistry,
          keyguardPeerId: card.peerId,
          recoveryPublicKey,
        },
        {
          signer: privateKeySigner(identity.ethereumPrivateKey),
          wrapper: publicKeyWrapper(card.wrappingKey),
          policies: solcPolicyDeployer(wallet, { nodeRegistry: config.contracts.nodeRegistry }),
          registrar: ethersCapsuleRegistrar(wallet, { contracts: config.contracts }),
          store: heliaCapsuleStore(laptop.helia),
          announcer: gossipAnnouncer(laptop, { peers: [addr as string] }),
        },
      )
      expect(r.announced.ok).toBe(true)
      const keys = await createKeyStore(join(dataDir, 'keys'))
      await until(async () => (await keys.get(r.capsuleId)) !== undefined, 30_000)
      // Logged just after the record is stored.
      await until(() => daemon?.stderr().includes('"message":"capsule adopted"') === true)
      const grantId = await requestAccess(r.capsuleId, ephemeral())
      await until(() => exec.received.has(grantId), 30_000)
      const key = exec.received.get(grantId) as Uint8Array
      expect(
        (await open(join(dir, 'laptop.capsule'), key, 'laptop.out')).equals(laptopPlaintext),
      ).toBe(true)
    } finally {
      await laptop.stop()
    }
  })

  it('SIGTERM stops cleanly; a restart re-serves a release that was journaled but never acknowledged', async () => {
    const d = daemon as CliDaemon
    const eph = ephemeral(false) // the executor cannot open it yet, and does not answer
    exec.silent = true
    const pushes = exec.pushes
    const grantId = await requestAccess(sealed.capsuleId, eph)
    await until(() => exec.pushes > pushes)
    await until(async () => {
      const s = (await runJson(['status', '--json'], env)).status
      return s.daemon.keyguard?.releases.pending === 1
    })
    d.child.kill('SIGTERM')
    expect(await d.exited).toBe(0)
    expect(existsSync(join(dataDir, 'serve.json'))).toBe(false)
    expect(d.stderr()).toContain('"message":"stopping"')

    exec.keys.set(eph, pendingKeys.get(eph) as Uint8Array)
    exec.silent = false
    // No new connection from the executor: the keyguard dials it from its peer store.
    daemon = await startServe(env)
    await until(() => exec.received.has(grantId))
    const opened = await open(
      sealed.capsulePath,
      exec.received.get(grantId) as Uint8Array,
      'resumed.bin',
    )
    expect(opened.equals(plaintext)).toBe(true)
    await until(async () => {
      const s = (await runJson(['status', '--json'], env)).status
      return s.daemon.running && s.daemon.keyguard?.releases.pending === 0
    })
    daemon.child.kill('SIGTERM')
    expect(await daemon.exited).toBe(0)
  })
})
