/**
 * What an operator scrapes from a real `executor-node serve --auto-run --ops-port 0` (its own
 * process, `src/cli.ts`): a real anvil, a real keyguard (software sealer) on a helia/libp2p node
 * that hosts and announces the capsules, a real receiver (`executor-node receive`). One capsule
 * runs and its result is delivered; one runs out of memory in QuickJS; one is run by
 * `executor-node run`, which hands it to the daemon (run.sock). Then `/metrics` holds
 * exactly those runs, the sandbox failure by kind, the delivery and the peers, and `/healthz`
 * answers with the chain head.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createCapsuleHeader,
  encodeBundle,
  generateDataKey,
  generateX25519KeyPair,
  type Receiver,
  type RuntimeRequirements,
  sealCapsule,
  signCapsuleHeader,
} from '@digicap/capsule-core'
import {
  connectDigicap,
  createProvider,
  type DigicapAddresses,
  deployDigicap,
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
  type Keyguard,
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
import { multiaddr } from '@multiformats/multiaddr'
import { getBytes, hexlify, parseEther, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultSandboxes } from '../src/executor-node.ts'
import { type CliDaemon, type JsonLine, startCli } from './helpers/cli.ts'

const quiet = { info: () => {}, warn: () => {} }
const enc = new TextEncoder()

let dir: string
let anvil: Anvil
let addresses: DigicapAddresses
let owner: Wallet
let kg: DigicapNode
let keyguard: Keyguard
let sealer: Sealer
let keyStore: KeyStore
let policy: string
let serve: CliDaemon
let receive: CliDaemon
let receiver: Receiver
let opsUrl: string
const started: ChildProcess[] = []

/** A capsule on the keyguard's node, its key in the keyguard, registered, announced (or not). */
async function announce(
  runtime: RuntimeRequirements,
  plaintext: Uint8Array,
  gossip = true,
): Promise<string> {
  const dataKey = generateDataKey()
  const sk = await sealer.publicKey()
  const header = createCapsuleHeader({
    owner: owner.address as `0x${string}`,
    policy: {
      chainId: Number(addresses.chainId),
      registry: addresses.capsuleRegistry as `0x${string}`,
      policy: policy as `0x${string}`,
    },
    keyguard: { peerId: kg.peerId, keyId: sk.keyId, wrapScheme: sk.scheme },
    runtime,
    receivers: [receiver],
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
  await (
    await connectDigicap(addresses, owner).capsuleRegistry.register(
      capsuleId,
      policy,
      cid,
      hexlify(header.payload.contentCommitment),
      kg.libp2p.peerId.toMultihash().bytes,
      `0x${sk.keyId}`,
    )
  ).wait()
  if (!gossip) return cid
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
  return cid
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'exnode-metrics-'))
  anvil = await startAnvil()
  const [deployer, o, funder] = anvil.signers as Wallet[]
  owner = o as Wallet
  addresses = await deployDigicap(deployer as Wallet, {
    minStake: parseEther('0.01'),
    grantWindow: 600,
    disputeWindow: 3600,
    unbondingDelay: 3600,
  })
  const operator = anvil.signers[5] as Wallet
  await (
    await connectDigicap(addresses, owner).capsuleRegistry.setOperator(operator.address, true)
  ).wait()
  const m = hexlify(environmentMeasurement(defaultSandboxes()))
  policy = (await deployPolicy(owner, environment(m), { nodeRegistry: addresses.nodeRegistry }))
    .address
  kg = await createDigicapNode()
  sealer = softwareSealer({
    keyFile: join(dir, 'sealer.pem'),
    allowInsecure: true,
    createIfMissing: true,
    logger: quiet,
  })
  keyStore = await createKeyStore(join(dir, 'keys'))
  const chainId = BigInt(addresses.chainId)
  keyguard = createKeyguard({
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

  // The executor and the receiver: `init` each, the executor funded and registered.
  const init = async (d: string) => {
    const words = join(dir, `${d}.words`)
    await writeFile(words, generateMnemonic())
    const c = startCli([
      'init',
      '--json',
      '--data-dir',
      join(dir, d),
      '--rpc-url',
      anvil.rpcUrl,
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
    if ((await c.exited) !== 0) throw new Error(`init ${d}: ${c.stderr()}`)
    return c.lines()[0] as JsonLine
  }
  const [executor, recv] = await Promise.all([init('exec'), init('recv')])
  await (
    await (funder as Wallet).sendTransaction({ to: executor.address, value: parseEther('1') })
  ).wait()
  const reg = startCli(['register', '--stake', '0.01', '--json', '--data-dir', join(dir, 'exec')])
  if ((await reg.exited) !== 0) throw new Error(`register: ${reg.stderr()}`)
  receiver = { publicKey: getBytes(recv.receiverPublicKey), peerId: recv.peerId }

  receive = startCli(['receive', '--json', '--data-dir', join(dir, 'recv')])
  started.push(receive.child)
  const listening = await receive.line((l) => l.event === 'listening')
  serve = startCli(
    ['serve', '--auto-run', '--fast', '--json', '--ops-port', '0', '--data-dir', join(dir, 'exec')],
    // The receiver is its bootstrap peer: results go straight to it.
    { DIGICAP_BOOTSTRAP: listening.addresses[0] },
  )
  started.push(serve.child)
  const up = await serve.line((l) => l.event === 'started')
  opsUrl = (await serve.line((l) => l.event === 'ops')).url
  await kg.libp2p.dial(multiaddr(up.addresses[0]))
}, 120_000)

afterAll(async () => {
  for (const c of started) if (c.exitCode === null) c.kill('SIGKILL')
  await keyguard?.stop().catch(() => {})
  await kg?.stop()
  await anvil?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** `name{labels} value` lines of a Prometheus text. */
function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

describe('executor-node serve --ops-port: metrics of real runs', () => {
  it('before any run: /healthz ok with the chain head, no run counted', async () => {
    const health = await fetch(`${opsUrl}/healthz`)
    expect(health.status).toBe(200)
    const body = (await health.json()) as JsonLine
    expect(body.ok).toBe(true)
    expect(body.checks.chain.detail.head).toBeGreaterThanOrEqual(addresses.deployBlock)
    expect(body.checks.deliveries.detail.pending).toBe(0)
    const text = await (await fetch(`${opsUrl}/metrics`)).text()
    expect(metric(text, 'digicap_info{app="executor-node",version="0.0.0"}')).toBe(1)
    expect(text).not.toMatch(/^digicap_runs_executed_total\{/m)
  })

  it('a delivered run and an out-of-memory run: runs, sandbox failures by kind, deliveries, peers', async () => {
    const ok = await announce({ kind: 'data' }, enc.encode('sixteen bytes..!'))
    const ran = await serve.line((l) => l.event === 'ran' && l.cid === ok)
    expect(ran.deliveries).toEqual([expect.objectContaining({ status: 'delivered' })])
    await receive.line((l) => l.event === 'result')

    const hog = await announce(
      { kind: 'quickjs', entry: 'main.js' },
      encodeBundle({
        entry: 'main.js',
        files: { 'main.js': enc.encode('const a = []; for (;;) a.push(new Uint8Array(1 << 20))') },
        data: new Uint8Array(0),
      }),
    )
    const failed = await serve.line((l) => l.event === 'refused' && l.cid === hog)
    expect(failed.code).toBe('SANDBOX_MEMORY')

    // `executor-node run` hands its job to this serve (run.sock): counted here too.
    const handed = await announce({ kind: 'data' }, enc.encode('handed over'), false)
    const run = startCli(['run', handed, '--fast', '--json', '--data-dir', join(dir, 'exec')])
    expect(await run.exited, run.stderr()).toBe(0)
    expect(run.lines().at(-1)?.startup.via).toBe('daemon')

    const text = await (await fetch(`${opsUrl}/metrics`)).text()
    expect(metric(text, 'digicap_runs_executed_total{outcome="ok",path="fast"}')).toBe(2)
    expect(metric(text, 'digicap_runs_executed_total{outcome="failed",path="unknown"}')).toBe(1)
    expect(metric(text, 'digicap_sandbox_failures_total{kind="SANDBOX_MEMORY"}')).toBe(1)
    expect(metric(text, 'digicap_results_delivered_total{status="delivered"}')).toBe(2)
    // The keyguard's node and the receiver.
    expect(metric(text, 'digicap_peers')).toBeGreaterThanOrEqual(2)
    expect(metric(text, 'process_resident_memory_bytes')).toBeGreaterThan(0)

    const health = (await (await fetch(`${opsUrl}/healthz`)).json()) as JsonLine
    expect(health.checks.peers.detail.connected).toBeGreaterThanOrEqual(2)
    // The daemon is still serving after the failed run.
    serve.child.kill('SIGTERM')
    expect(await serve.exited).toBe(0)
    expect(serve.lines().at(-1)?.event).toBe('stopped')
  })
})
