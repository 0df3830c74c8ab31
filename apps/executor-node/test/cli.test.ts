/**
 * End-to-end tests of the `executor-node` CLI: each command runs as its own process
 * (`node src/cli.ts`, Node 24 type stripping) against a real anvil, a real keyguard
 * (software sealer) on a real helia/libp2p node on loopback.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  createCapsuleHeader,
  generateDataKey,
  generateX25519KeyPair,
  type Receiver,
  sealCapsule,
  signCapsuleHeader,
} from '@digicap/capsule-core'
import {
  connectDigicap,
  createProvider,
  type DigicapAddresses,
  deployDigicap,
  deploySettlement,
  environment,
} from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { environmentMeasurement } from '@digicap/executor'
import {
  createKeyguard,
  createKeyStore,
  createReleaseJournal,
  ethersChainClient,
  generateMnemonic,
  type KeyStore,
  type Sealer,
  softwareSealer,
  wrapDataKey,
} from '@digicap/keyguard'
import {
  announceCapsule,
  createDigicapNode,
  type DigicapNode,
  heliaCapsuleStore,
} from '@digicap/p2p'
import {
  addressOfPrivateKey,
  request,
  resultHashOf,
  resultProtocol,
  signResult,
} from '@digicap/protocol'
import { multiaddr } from '@multiformats/multiaddr'
import { getBytes, hexlify, parseEther, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { defaultSandboxes } from '../src/executor-node.ts'
import { type CliRun, runCli, runListingModules, startCli } from './helpers/cli.ts'
import { askSocket, frame } from './helpers/run-socket.ts'

const quiet = { info: () => {}, warn: () => {} }
/** A message of ethers' `getBytes`, in any file that holds ethers' code. */
const ETHERS_MARK = 'invalid BytesLike value'

let anvil: Anvil
let addresses: DigicapAddresses
let owner: Wallet
let funder: Wallet
let kg: DigicapNode
let sealer: Sealer
let keyStore: KeyStore
let stopKeyguard: () => Promise<void>
let policy: string
let denyPolicy: string
let dir: string
let execDir: string
let executorPeerId: string
let executorAddress: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'exnode-cli-'))
  execDir = join(dir, 'exec')
  anvil = await startAnvil()
  const [deployer, o, f] = anvil.signers as Wallet[]
  owner = o as Wallet
  funder = f as Wallet
  addresses = await deployDigicap(deployer as Wallet, {
    minStake: parseEther('0.01'),
    grantWindow: 600,
    disputeWindow: 3600,
    unbondingDelay: 3600,
  })
  // The keyguard's operator: its own account for audit records, approved by the owner, so the
  // owner's transactions here never race the keyguard's for a nonce.
  const operator = anvil.signers[5] as Wallet
  await (
    await connectDigicap(addresses, owner).capsuleRegistry.setOperator(operator.address, true)
  ).wait()
  const m = hexlify(environmentMeasurement(defaultSandboxes()))
  policy = (await deployPolicy(owner, environment(m), { nodeRegistry: addresses.nodeRegistry }))
    .address
  denyPolicy = (
    await deployPolicy(owner, environment(hexlify(randomBytes(32))), {
      nodeRegistry: addresses.nodeRegistry,
    })
  ).address
  kg = await createDigicapNode()
  sealer = softwareSealer({
    keyFile: join(dir, 'sealer.pem'),
    allowInsecure: true,
    createIfMissing: true,
    logger: quiet,
  })
  keyStore = await createKeyStore(join(dir, 'keys'))
  const chainId = BigInt(addresses.chainId)
  const keyguard = createKeyguard({
    dataDir: join(dir, 'kg'),
    confirmations: 0,
    startBlock: addresses.deployBlock,
    pollIntervalMs: 100,
    fastPath: { enabled: true },
  })({
    sealer,
    keyStore,
    journal: await createReleaseJournal(join(dir, 'journal')),
    chain: ethersChainClient({
      providers: [createProvider(anvil.rpcUrl, chainId)],
      signer: operator,
      addresses,
      chainId,
    }),
    libp2p: kg.libp2p,
    logger: quiet,
  })
  await keyguard.start()
  stopKeyguard = () => keyguard.stop()
}, 60_000)

afterAll(async () => {
  await stopKeyguard?.()
  await kg?.stop()
  await anvil?.stop()
  await rm(dir, { recursive: true, force: true })
})

async function makeCapsule(text: string, p: string, receivers: Receiver[] = []): Promise<string> {
  return (await makeCapsuleFull(text, p, receivers)).cid
}

async function makeCapsuleFull(
  text: string,
  p: string,
  receivers: Receiver[] = [],
): Promise<{ cid: string; capsuleId: string }> {
  const plaintext = new TextEncoder().encode(text)
  const dataKey = generateDataKey()
  const sk = await sealer.publicKey()
  const header = createCapsuleHeader({
    owner: owner.address as `0x${string}`,
    policy: {
      chainId: Number(addresses.chainId),
      registry: addresses.capsuleRegistry as `0x${string}`,
      policy: p as `0x${string}`,
    },
    keyguard: { peerId: kg.peerId, keyId: sk.keyId, wrapScheme: sk.scheme },
    runtime: { kind: 'data' },
    receivers,
    dataKey,
    plaintext,
  })
  const bytes = sealCapsule({
    header,
    signature: signCapsuleHeader(header, getBytes(owner.privateKey)),
    dataKey,
    plaintext,
  })
  const cid = await heliaCapsuleStore(kg.helia).put(bytes)
  const capsuleId = hexlify(header.capsuleId)
  await keyStore.put({
    capsuleId,
    metadata: { owner: owner.address },
    wrappedKeys: await wrapDataKey(dataKey, {
      sealer,
      recoveryPublicKey: generateX25519KeyPair().publicKey,
    }),
  })
  const c = connectDigicap(addresses, owner)
  await (
    await c.capsuleRegistry.register(
      capsuleId,
      p,
      cid,
      hexlify(header.payload.contentCommitment),
      kg.libp2p.peerId.toMultihash().bytes,
      `0x${sk.keyId}`,
    )
  ).wait()
  return { cid, capsuleId }
}

async function initNode(
  d: string,
): Promise<{ address: string; peerId: string; receiverPublicKey: string }> {
  const words = join(dir, `${randomBytes(4).join('')}.words`)
  await writeFile(words, generateMnemonic())
  const r = await runCli([
    'init',
    '--json',
    '--data-dir',
    d,
    '--rpc-url',
    anvil.rpcUrl,
    // A quorum of two (the same anvil twice): every registry check below goes through it.
    '--extra-rpc-url',
    anvil.rpcUrl,
    '--quorum',
    '2',
    '--capsule-registry',
    addresses.capsuleRegistry,
    '--node-registry',
    addresses.nodeRegistry,
    '--access-controller',
    addresses.accessController,
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--keyguard-addr',
    kg.multiaddrs()[0] as string,
    '--mnemonic-file',
    words,
  ])
  // No TPM named: the secrets are sealed by the software sealer, which says so (and only that).
  expect(r.stderr).toContain('INSECURE')
  for (const line of r.stderr.trim().split('\n')) expect(line).toMatch(/software sealer/)
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout)
}

describe('executor-node CLI', () => {
  it('--help per command, usage errors exit 2 with error[USAGE]', async () => {
    const [main, bad, ...helps] = await Promise.all([
      runCli(['--help']),
      runCli(['frobnicate']),
      ...['init', 'register', 'run', 'serve', 'receive'].map((c) => runCli([c, '--help'])),
    ])
    expect(main?.code).toBe(0)
    expect(main?.stdout).toContain('executor-node <command>')
    for (const [i, c] of ['init', 'register', 'run', 'serve', 'receive'].entries()) {
      expect(helps[i]?.code).toBe(0)
      expect(helps[i]?.stdout).toContain(`executor-node ${c}`)
    }
    expect(bad?.code).toBe(2)
    expect(bad?.stderr).toContain('error[USAGE]')
    const [version, versionJson] = await Promise.all([
      runCli(['--version']),
      runCli(['-V', '--json']),
    ])
    expect(version.code).toBe(0)
    expect(version.stdout).toBe(`executor-node 0.0.0 (node ${process.versions.node})\n`)
    expect(JSON.parse(versionJson.stdout)).toEqual({
      name: 'executor-node',
      version: '0.0.0',
      node: process.versions.node,
    })
    const noInit = await runCli(['run', 'bafy', '--data-dir', join(dir, 'none')])
    expect(noInit.code).toBe(1)
    expect(noInit.stderr).toContain('error[NOT_INITIALISED]')
  })

  it('register from an unfunded account names the account, its balance and the amount to send', async () => {
    const unfunded = await initNode(join(dir, 'unfunded'))
    const r = await runCli(['register', '--stake', '0.01', '--data-dir', join(dir, 'unfunded')])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(
      `error[INSUFFICIENT_FUNDS]: The account ${unfunded.address} has 0.0 ETH; register needs`,
    )
    expect(r.stderr).toMatch(
      new RegExp(
        `Send at least [0-9.]+ ETH to ${unfunded.address} \\(the stake, 0\\.01 ETH, plus gas\\)`,
      ),
    )
  }, 180_000)

  it('init makes an empty signed-vote record for new words only: imported words over a damaged record get none (ADR 0093, review 135)', async () => {
    const folder = join(dir, 'vote-record')
    const args = [
      'init',
      '--json',
      '--data-dir',
      folder,
      '--rpc-url',
      anvil.rpcUrl,
      '--capsule-registry',
      addresses.capsuleRegistry,
      '--node-registry',
      addresses.nodeRegistry,
      '--access-controller',
      addresses.accessController,
    ]
    const fresh = await runCli(args)
    expect(fresh.code).toBe(0)
    expect(JSON.parse(fresh.stdout)).toMatchObject({ voteRecord: 'created' })
    const record = join(folder, 'signed-votes.json')
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ entries: [] })
    // The operator "fixes" a damaged record by re-running init with the key's words: the record
    // is moved aside, and no empty one stands in for it (it could hide open votes).
    const words = join(dir, 'vote-record.words')
    await writeFile(words, generateMnemonic())
    const first = await runCli([...args, '--force', '--mnemonic-file', words])
    expect(JSON.parse(first.stdout)).toMatchObject({ voteRecord: 'none' })
    expect(existsSync(record)).toBe(false)
    await writeFile(record, '{"version":1,"signer":')
    const again = await runCli([...args, '--force', '--mnemonic-file', words])
    expect(again.code).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({ voteRecord: 'none' })
    expect(existsSync(record)).toBe(false)
  }, 60_000)

  it('init refuses a quorum larger than its RPC URLs (usage error, exit 2)', async () => {
    const noQuorum = await runCli([
      'init',
      '--data-dir',
      join(dir, 'noquorum'),
      '--extra-rpc-url',
      'http://127.0.0.1:1',
      '--quorum',
      '3',
      '--capsule-registry',
      addresses.capsuleRegistry,
      '--node-registry',
      addresses.nodeRegistry,
      '--access-controller',
      addresses.accessController,
    ])
    expect(noQuorum.code).toBe(2)
    expect(noQuorum.stderr).toContain('--quorum must be 1..the number of RPC URLs')
  })

  // One initialised, funded, registered node shared by the tests below (and by the receive and
  // serve tests after them); each step is its own test with its own time limit.
  describe('init → register → run', () => {
    let id: Awaited<ReturnType<typeof initNode>>
    let reg: CliRun
    beforeAll(async () => {
      id = await initNode(execDir)
      executorPeerId = id.peerId
      executorAddress = id.address
      await (await funder.sendTransaction({ to: id.address, value: parseEther('1') })).wait()
      reg = await runCli(['register', '--stake', '0.01', '--json', '--data-dir', execDir])
    }, 90_000)

    it('init creates an identity and refuses to overwrite it', async () => {
      expect(id.address).toMatch(/^0x[0-9a-fA-F]{40}$/)
      const again = await initNode(execDir).catch(() => undefined)
      expect(again).toBeUndefined()
    }, 30_000)

    it('register stakes the node; registering twice names AlreadyRegistered', async () => {
      expect(reg.code).toBe(0)
      expect(JSON.parse(reg.stdout).peerId).toBe(id.peerId)
      const twice = await runCli(['register', '--stake', '0.01', '--data-dir', execDir])
      expect(twice.code).toBe(1)
      expect(twice.stderr).toContain('error[CONTRACT_REVERT]')
      expect(twice.stderr).toContain('AlreadyRegistered')
    }, 30_000)

    it('run (chain path) prints every stage and the result', async () => {
      const cid = await makeCapsule('hello from the cli', policy)
      const r = await runListingModules(['run', cid, '--json', '--data-dir', execDir])
      expect(r.code).toBe(0)
      // The chain-path grant is a transaction: ethers (its own bundle) loads for it (ADR 0052).
      expect(r.loaded.some((f) => f.endsWith('/executor/dist/one-shot-ethers.js'))).toBe(true)
      const doc = JSON.parse(r.stdout)
      expect(doc.path).toBe('chain')
      expect(JSON.parse(doc.result).bytes).toBe(18)
      // The start-up (process, modules, node) is a stage of its own, in the JSON document too.
      expect(doc.startup.ms).toBeGreaterThanOrEqual(doc.startup.nodeMs)
      expect(doc.startup.modulesMs).toBeGreaterThan(0)
      for (const stage of [
        'start',
        'fetch',
        'verify',
        'grant',
        'release',
        'open',
        'run',
        'clean-up',
        'deliver',
      ]) {
        expect(r.stderr).toContain(`✓ ${stage}`)
      }
    }, 45_000)

    it('run --fast takes the fast path, its node from one bundle: no libp2p, helia or ethers module file (ADR 0042, 0052)', async () => {
      const fast = await runListingModules([
        'run',
        await makeCapsule('fast one', policy),
        '--fast',
        '--data-dir',
        execDir,
      ])
      expect(fast.code).toBe(0)
      expect(fast.stderr).toContain('fast path')
      expect(JSON.parse(fast.stdout).bytes).toBe(8)
      // A one-shot run (no daemon: its own node) imports the node as one file; the ~900 modules
      // of libp2p, helia, ethers, multiformats and fast-glob it loaded one by one are inside.
      // What stays outside: capsule-core (its cborg, noble, HPKE), cli-kit, the sandboxes' QuickJS.
      expect(fast.loaded.some((f) => f.endsWith('/executor/dist/one-shot.js'))).toBe(true)
      const heavy =
        /libp2p|helia|ethers|multiformats|fast-glob|@chainsafe|protons|blockstore|datastore|ipfs-unixfs|(packages|@digicap)\/(p2p|protocol|keyguard|contracts|attestation|committee|vrf|oci|tpm)\//
      expect(fast.loaded.filter((f) => heavy.test(f))).toEqual([])
      // Nor ethers' own bundle: the registry read is plain JSON-RPC, and a fast-path run sends no
      // transaction (ADR 0052). The bundle's build fails if a chunk loaded at start imports it.
      expect(fast.loaded.filter((f) => f.includes('one-shot-ethers'))).toEqual([])
      // ...and no file it loaded holds ethers' code (before ADR 0052's amendment, one-shot.js did).
      const withEthers = fast.loaded
        .filter((f) => f.includes('/executor/dist/'))
        .filter((f) => readFileSync(fileURLToPath(f), 'utf8').includes(ETHERS_MARK))
      expect(withEthers).toEqual([])
      const files = new Set(fast.loaded.filter((f) => !f.startsWith('node:')))
      expect(files.size).toBeLessThan(150) // ~130: capsule-core's cborg, noble and HPKE included
    }, 45_000)

    it('run of a CID nobody provides: progress while it waits, then CAPSULE_FETCH_TIMEOUT', async () => {
      // Content only a node that is gone ever held: the connected keyguard is asked, has nothing.
      const gone = await createDigicapNode()
      const cid = await heliaCapsuleStore(gone.helia).put(randomBytes(64))
      await gone.stop()
      const started = Date.now()
      const r = await runCli(['run', cid, '--fetch-timeout', '5', '--data-dir', execDir])
      expect(r.code).toBe(1)
      expect(r.stderr).toContain(
        'error[CAPSULE_FETCH_TIMEOUT]: No peer provided the capsule within 5 s',
      )
      expect(r.stderr).toMatch(/fetch: [0-9]+ s, asked [1-9][0-9]* peer\(s\), 0 bytes received/)
      expect(r.stderr).toContain('pi-node serve')
      // Bounded by the timeout (plus start-up on a loaded machine), not by 120 s.
      expect(Date.now() - started).toBeLessThan(60_000)
      const bad = await runCli(['run', cid, '--fetch-timeout', 'soon', '--data-dir', execDir])
      expect(bad.code).toBe(2)
      expect(bad.stderr).toContain('error[USAGE]: --fetch-timeout must be a positive number')
    }, 180_000)

    it('run --fast on a denying policy is refused with the reason', async () => {
      const refused = await runCli([
        'run',
        await makeCapsule('no', denyPolicy),
        '--fast',
        '--data-dir',
        execDir,
      ])
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain(
        "error[ACCESS_DENIED]: Access denied by the capsule's policy: WRONG_ENVIRONMENT",
      )
      expect(refused.stderr).toContain('path=fast')
    }, 45_000)
  })

  it('receive --once prints a result delivered by run', async () => {
    const recvDir = join(dir, 'recv')
    const rid = await initNode(recvDir)
    const receiver = startCli(['receive', '--once', '--json', '--data-dir', recvDir])
    const listening = await receiver.line(() => true, 20_000)
    expect(listening.event).toBe('listening')
    expect(listening.publicKey).toBe(rid.receiverPublicKey)
    // A forged result (another key claims to be the executor) is printed as refused, typed.
    const forger = await createDigicapNode()
    const fields = {
      runId: new Uint8Array(randomBytes(32)),
      grantId: new Uint8Array(randomBytes(32)),
      capsuleId: new Uint8Array(randomBytes(32)),
      executor: getBytes(executorAddress),
      receiverKey: getBytes(rid.receiverPublicKey),
      measurement: new Uint8Array(32),
      runMeasurement: new Uint8Array(32),
      resultHash: resultHashOf(new Uint8Array(48)),
      resultSize: 48,
    }
    const forgerKey = new Uint8Array(randomBytes(32))
    const forged = await request(forger.libp2p, multiaddr(listening.addresses[0]), resultProtocol, {
      ...fields,
      // signed as the forger, claiming the executor's address
      signature: signResult(
        { ...fields, executor: addressOfPrivateKey(forgerKey) },
        {
          chainId: BigInt(addresses.chainId),
          verifyingContract: addresses.accessController as `0x${string}`,
        },
        forgerKey,
      ),
      hpke: new Uint8Array(48),
    })
    await forger.stop()
    expect(forged).toMatchObject({ status: 'refused', reasonCode: 'bad-signature' })
    const cid = await makeCapsule('for the receiver', policy, [
      { publicKey: getBytes(rid.receiverPublicKey), peerId: rid.peerId },
    ])
    const r = await runCli(['run', cid, '--fast', '--json', '--data-dir', execDir], {
      DIGICAP_BOOTSTRAP: listening.addresses[0],
    })
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout).deliveries[0].status).toBe('delivered')
    expect(await receiver.exited).toBe(0)
    const lines = receiver.lines()
    expect(lines.find((l) => l.event === 'refused')).toMatchObject({
      code: 'RESULT_REFUSED',
      reason: 'bad-signature',
    })
    const result = lines.at(-1) ?? {}
    expect(result.event).toBe('result')
    // the verified signer: the grant's executor on chain
    expect(result.executor).toBe(executorAddress)
    expect(JSON.parse(result.result).bytes).toBe(16)
    expect(executorPeerId).toBeTypeOf('string')
  })

  it('serve --auto-run runs an announced capsule and stops on SIGTERM', async () => {
    const serve = startCli([
      'serve',
      '--auto-run',
      '--fast',
      '--json',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--data-dir',
      execDir,
    ])
    const { child, exited, lines, waitFor } = serve
    // A failing step must not leave the daemon running into the next test.
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })
    const started = await waitFor('started')
    await kg.libp2p.dial(multiaddr((started.addresses as string[])[0] as string))
    const { cid, capsuleId } = await makeCapsuleFull('announced', policy)
    await announceCapsule(
      kg,
      {
        capsuleId,
        cid,
        owner: owner.address,
        registry: addresses.capsuleRegistry,
        chainId: Number(addresses.chainId),
        keyguardPeer: kg.peerId,
      },
      { timeoutMs: 15_000 },
    )
    const ran = await waitFor('ran')
    expect(ran.cid).toBe(cid)
    expect(ran.path).toBe('fast')

    // ADR 0035: with serve up, `run` hands the job over run.sock (0600): the daemon says so,
    // and the run process never loads libp2p or helia (no second node).
    const sock = join(execDir, 'run.sock')
    expect((await stat(sock)).mode & 0o777).toBe(0o600)
    const viaCid = await makeCapsule('via the daemon', policy)
    const handed = await runListingModules([
      'run',
      viaCid,
      '--fast',
      '--json',
      '--data-dir',
      execDir,
    ])
    expect(handed.code).toBe(0)
    const doc = JSON.parse(handed.stdout)
    expect(doc.startup.via).toBe('daemon')
    expect(doc.path).toBe('fast')
    expect(JSON.parse(doc.result).bytes).toBe(14)
    expect(handed.loaded.filter((f) => /libp2p|helia|ethers/.test(f))).toEqual([])
    expect((await waitFor('run-socket-run')).cid).toBe(viaCid)
    // Bad requests get a typed refusal and the daemon keeps serving.
    const bad: [Buffer, string][] = [
      [frame('{not json'), 'malformed'],
      [frame('', 1 << 30), 'too-large'],
      [frame(JSON.stringify({ v: 2 })), 'version'],
      [frame(JSON.stringify({ v: 1, token: '00', cid: viaCid, options: {} })), 'token'],
    ]
    for (const [bytes, reason] of bad) {
      expect(await askSocket(sock, bytes)).toMatchObject({
        type: 'error',
        code: 'RUN_SOCKET',
        details: { reason },
      })
    }
    // Another uid cannot even connect (the socket is 0600, the token file too).
    if (process.getuid?.() === 0) {
      const probe = `import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print('connected')
except PermissionError:
    print('EACCES')`
      const other = spawnSync('python3', ['-c', probe, sock], {
        uid: 65534,
        gid: 65534,
        encoding: 'utf8',
      })
      expect(other.stdout?.trim()).toBe('EACCES')
    }
    const again = await runCli([
      'run',
      await makeCapsule('still up', policy),
      '--fast',
      '--json',
      '--data-dir',
      execDir,
    ])
    expect(JSON.parse(again.stdout).startup.via).toBe('daemon')
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(lines().at(-1)?.event).toBe('stopped')
    // Stopped: the socket and its token are gone, and `run` starts its own node again.
    await expect(stat(sock)).rejects.toMatchObject({ code: 'ENOENT' })
    const alone = await runCli([
      'run',
      await makeCapsule('alone', policy),
      '--fast',
      '--json',
      '--data-dir',
      execDir,
    ])
    expect(alone.code).toBe(0)
    expect(JSON.parse(alone.stdout).startup.via).toBeUndefined()
  }, 240_000)

  it('serve: a second daemon on the same folder stops before it starts a node; a folder too deep for a unix socket serves without the hand-off', async () => {
    const listen = ['--listen', '/ip4/127.0.0.1/tcp/0', '--json']
    const first = startCli(['serve', ...listen, '--data-dir', execDir])
    onTestFinished(() => {
      if (first.child.exitCode === null) first.child.kill('SIGKILL')
    })
    await first.waitFor('started')
    const second = await runCli(['serve', ...listen, '--data-dir', execDir])
    expect(second.code).toBe(1)
    expect(second.stderr).toContain('error[RUN_SOCKET]')
    expect(second.stderr).toContain('in-use')
    // it never came up as a second node with the same peer id
    expect(second.stdout).not.toContain('"started"')
    expect(await first.stop()).toBe(0)
    // run.sock would be over the 107 bytes a unix socket path may have
    const deep = join(dir, 'd'.repeat(Math.max(1, 110 - dir.length)))
    await initNode(deep)
    const serve = startCli(['serve', ...listen, '--data-dir', deep])
    onTestFinished(() => {
      if (serve.child.exitCode === null) serve.child.kill('SIGKILL')
    })
    expect(await serve.waitFor('run-socket-unavailable')).toMatchObject({ reason: 'path-too-long' })
    await serve.waitFor('started')
    expect(await serve.stop()).toBe(0)
  }, 90_000)

  it('serve --role: an unknown role is a usage error, verifier without the settlement a config error, with it the node watches the hub', async () => {
    const listen = ['--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', execDir]
    const bogus = await runCli(['serve', '--role', 'judge', ...listen])
    expect(bogus.code).toBe(2)
    expect(bogus.stderr).toContain('Unknown --role')
    const bare = await runCli(['serve', '--role', 'verifier', ...listen])
    expect(bare.code).toBe(1)
    expect(bare.stderr).toContain('error[CONFIG]')
    expect(bare.stderr).toContain('DIGICAP_ATTESTATION_HUB')
    const settlement = await deploySettlement(anvil.signers[0] as Wallet, addresses)
    const env = {
      DIGICAP_ATTESTATION_HUB: settlement.attestationHub,
      DIGICAP_COMMITTEE_SORTITION: settlement.committeeSortition,
    }
    // The signed-vote record (ADR 0093): this folder was made from imported words, which may be
    // a restore of a key with open votes elsewhere, so init made none (review 135: an empty one
    // let the restored node take its seat again and sign another vote for a slot it signed).
    const record = join(execDir, 'signed-votes.json')
    expect(existsSync(record)).toBe(false)
    const imported = await runCli(['serve', '--role', 'executor+verifier', ...listen], env)
    expect(imported.code).toBe(1)
    expect(imported.stderr).toContain('no signed-vote record')
    const serve = startCli(
      ['serve', '--role', 'executor+verifier', '--new-vote-record', '--json', ...listen],
      env,
    )
    onTestFinished(() => {
      if (serve.child.exitCode === null) serve.child.kill('SIGKILL')
    })
    const verifier = await serve.waitFor('verifier')
    expect(verifier).toMatchObject({ address: executorAddress, hub: settlement.attestationHub })
    expect(await serve.stop()).toBe(0)
    // Damaged or missing, the verifier does not start (it never signs without it) unless told the
    // key has no open votes.
    const made = JSON.parse(readFileSync(record, 'utf8')) as { signer: string; entries: unknown[] }
    expect(made).toMatchObject({ signer: executorAddress.toLowerCase(), entries: [] })
    const whole = readFileSync(record, 'utf8')
    await writeFile(record, whole.slice(0, 20))
    const torn = await runCli(['serve', '--role', 'verifier', ...listen], env)
    expect(torn.code).toBe(1)
    expect(torn.stderr).toContain('error[PBFT_SIGNED_VOTE]')
    expect(torn.stderr).toContain('damaged')
    await rm(record)
    const missing = await runCli(['serve', '--role', 'verifier', ...listen], env)
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('no signed-vote record')
    expect(missing.stderr).toContain('--new-vote-record')
    const fresh = startCli(
      ['serve', '--role', 'verifier', '--new-vote-record', '--json', ...listen],
      env,
    )
    onTestFinished(() => {
      if (fresh.child.exitCode === null) fresh.child.kill('SIGKILL')
    })
    await fresh.waitFor('verifier')
    expect(await fresh.stop()).toBe(0)
    expect(readFileSync(record, 'utf8')).toBe(whole)
  }, 90_000)
})
