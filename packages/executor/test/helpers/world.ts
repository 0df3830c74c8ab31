/**
 * Real parts for the executor's end-to-end tests: anvil with Digicap deployed, a keyguard
 * (software sealer; `@digicap/keyguard` is a dev dependency only) on a helia+libp2p node that
 * also hosts the capsules, the executor's own node, and a receiver node.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type CapsuleHeader,
  capsuleSigningDigest,
  createCapsuleHeader,
  generateDataKey,
  generateX25519KeyPair,
  parseCapsuleHeader,
  privateKeySigner,
  type Receiver,
  type RuntimeRequirements,
  sealCapsule,
  signCapsuleHeader,
  signDigest,
  type X25519KeyPair,
} from '@digicap/capsule-core'
import {
  attested,
  connectDigicap,
  connectSettlement,
  createProvider,
  type DigicapAddresses,
  type DigicapContracts,
  deployDigicap,
  environment,
  type PolicyExpression,
  type SettlementParameters,
} from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import {
  createKeyguard,
  createKeyStore,
  createReleaseJournal,
  ethersChainClient,
  type KeyStore,
  type Sealer,
  softwareSealer,
  wrapDataKey,
} from '@digicap/keyguard'
import {
  type CapsuleStore,
  createDigicapNode,
  type DigicapNode,
  heliaCapsuleStore,
} from '@digicap/p2p'
import { headerResultCapsules, type ResultCapsuleSource } from '@digicap/protocol'
import { getBytes, hexlify, parseEther, randomBytes, type Wallet } from 'ethers'
import {
  type Bundle,
  createExecutor,
  dataSandbox,
  type Executor,
  type ExecutorComponents,
  type ExecutorInit,
  encodeBundle,
  environmentMeasurement,
  ethersExecutorChain,
  ethersResultGrants,
  quickjsSandbox,
  type ResultGrantSource,
  type SandboxSet,
} from '../../src/index.ts'

export const MIN_STAKE = parseEther('0.01')
export const quiet = { info: () => {}, warn: () => {} }

export function sandboxes(): SandboxSet {
  return {
    quickjs: quickjsSandbox(),
    data: dataSandbox((bytes) => `data:${bytes.byteLength}`),
  }
}

export interface World {
  anvil: Anvil
  addresses: DigicapAddresses
  c: DigicapContracts
  owner: Wallet
  executorWallet: Wallet
  other: Wallet
  kg: DigicapNode
  kgStore: CapsuleStore
  exec: DigicapNode
  execStore: CapsuleStore
  sealer: Sealer
  keyStore: KeyStore
  /** Policy that admits this executor's environment measurement. */
  policy: string
  measurement: Uint8Array
  executor: Executor
  stopKeyguard: () => Promise<void>
  dirs: string[]
  stop(): Promise<void>
}

export async function send(tx: Promise<{ wait: () => Promise<unknown> }>): Promise<void> {
  await (await tx).wait()
}

export async function setupWorld(
  options: {
    fastPath?: boolean
    executor?: ExecutorInit
    tmpRoot?: string
    /** The keyguard's sealer (default: a software sealer in the world's dir). */
    sealer?: Sealer
    /** The settlement deployDigicap deploys (committee size, sortition window, shares). */
    settlement?: SettlementParameters
    /** The keyguard's chain path waits for the committee's before verdict (ADR 0033). */
    committee?: { verdictPollMs?: number }
    /** Extra executor components: a TPM attestation agent, a run lifecycle. */
    components?: Pick<ExecutorComponents, 'attestation' | 'lifecycle' | 'watchCommittee'>
    /** Sandboxes beyond the default set, given the executor's node (the `oci` sandbox). */
    extraSandboxes?: (exec: DigicapNode) => SandboxSet
    /** The keyguard's confirmations (default 0). */
    confirmations?: number
  } = {},
): Promise<World> {
  const anvil = await startAnvil()
  const [deployer, owner, executorWallet, other] = anvil.signers as Wallet[]
  // The keyguard's operator: its own account for audit records, approved by the owner, so the
  // owner's transactions here never race the keyguard's for a nonce.
  const operator = anvil.signers[5] as Wallet
  const addresses = await deployDigicap(deployer as Wallet, {
    minStake: MIN_STAKE,
    grantWindow: 600,
    disputeWindow: 3600,
    unbondingDelay: 3600,
    ...(options.settlement === undefined ? {} : { settlement: options.settlement }),
  })
  const c = connectDigicap(addresses, deployer as Wallet)
  const [kg, exec] = await Promise.all([createDigicapNode(), createDigicapNode()])
  const sb = { ...sandboxes(), ...options.extraSandboxes?.(exec) }
  const measurement = environmentMeasurement(sb)
  await send(
    connectDigicap(addresses, owner as Wallet).capsuleRegistry.setOperator(operator.address, true),
  )
  const policy = await deployPolicy(owner as Wallet, environment(hexlify(measurement)), {
    nodeRegistry: addresses.nodeRegistry,
  })
  const chainId = BigInt(addresses.chainId)
  const execChain = ethersExecutorChain({
    addresses,
    signer: executorWallet as Wallet,
  })
  await execChain.registerNode({
    peerId: exec.libp2p.peerId.toMultihash().bytes,
    attestationKeyHash: randomBytes(32),
    roles: 1,
    stake: MIN_STAKE,
  })
  const dir = await mkdtemp(join(tmpdir(), 'exec-world-'))
  const sealer =
    options.sealer ??
    softwareSealer({
      keyFile: join(dir, 'sealer.pem'),
      allowInsecure: true,
      createIfMissing: true,
      logger: quiet,
    })
  const keyStore = await createKeyStore(join(dir, 'keys'))
  const journal = await createReleaseJournal(join(dir, 'journal'))
  const keyguard = createKeyguard({
    dataDir: dir,
    confirmations: options.confirmations ?? 0,
    startBlock: addresses.deployBlock,
    pollIntervalMs: 100,
    fastPath: { enabled: options.fastPath ?? true, maxExpirySeconds: 300 },
    ...(options.committee === undefined ? {} : { committee: options.committee }),
  })({
    sealer,
    keyStore,
    journal,
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
  const execStore = heliaCapsuleStore(exec.helia)
  const executor = createExecutor({
    keyguardAddrs: kg.multiaddrs(),
    maxReleaseWaitMs: 20_000,
    ...(options.tmpRoot === undefined ? {} : { tmpRoot: options.tmpRoot }),
    ...options.executor,
  })({
    libp2p: exec.libp2p,
    store: execStore,
    chain: execChain,
    signer: privateKeySigner((executorWallet as Wallet).privateKey as `0x${string}`),
    sandboxes: sb,
    ...options.components,
  })
  await executor.start()
  const world: World = {
    anvil,
    addresses,
    c,
    owner: owner as Wallet,
    executorWallet: executorWallet as Wallet,
    other: other as Wallet,
    kg,
    kgStore: heliaCapsuleStore(kg.helia),
    exec,
    execStore,
    sealer,
    keyStore,
    policy: policy.address,
    measurement,
    executor,
    stopKeyguard: () => keyguard.stop(),
    dirs: [dir],
    async stop() {
      await executor.stop()
      await keyguard.stop().catch(() => {})
      await Promise.all([kg.stop(), exec.stop()])
      await anvil.stop()
      for (const d of world.dirs) await rm(d, { recursive: true, force: true })
    },
  }
  return world
}

export interface MadeCapsule {
  cid: string
  capsuleId: string
  header: CapsuleHeader
  bytes: Uint8Array
  dataKey: Uint8Array
}

export interface MakeCapsuleOptions {
  plaintext: Uint8Array
  runtime: RuntimeRequirements
  receivers?: Receiver[]
  /** Policy address; default the world's environment policy. */
  policy?: string
  /** Who signs the header (default the owner); the registry always lists `world.owner`. */
  signer?: Wallet
  /** CID to register instead of the real one. */
  registerCid?: string
  /** Skip registration. */
  register?: boolean
  /** Store this key at the keyguard instead of the real one. */
  keyguardKey?: Uint8Array
  /** Bytes to put on IPFS instead of the sealed capsule. */
  tamper?: (bytes: Uint8Array) => Uint8Array
}

export async function makeCapsule(w: World, o: MakeCapsuleOptions): Promise<MadeCapsule> {
  const dataKey = generateDataKey()
  const sealerKey = await w.sealer.publicKey()
  const policy = o.policy ?? w.policy
  const header = createCapsuleHeader({
    owner: w.owner.address as `0x${string}`,
    policy: {
      chainId: Number(w.addresses.chainId),
      registry: w.addresses.capsuleRegistry as `0x${string}`,
      policy: policy as `0x${string}`,
    },
    keyguard: { peerId: w.kg.peerId, keyId: sealerKey.keyId, wrapScheme: sealerKey.scheme },
    runtime: o.runtime,
    receivers: o.receivers ?? [],
    dataKey,
    plaintext: o.plaintext,
  })
  const signature = signCapsuleHeader(header, getBytes(w.owner.privateKey))
  let bytes = sealCapsule({ header, signature, dataKey, plaintext: o.plaintext })
  if (o.signer && o.signer !== w.owner) {
    // sealCapsule refuses a foreign signature: splice a forged one into the sealed bytes.
    const forged = signDigest(capsuleSigningDigest(header), getBytes(o.signer.privateKey))
    const at = parseCapsuleHeader(bytes).payloadOffset - forged.length
    bytes = bytes.slice()
    bytes.set(forged, at)
  }
  if (o.tamper) bytes = o.tamper(bytes)
  const cid = await w.kgStore.put(bytes)
  const capsuleId = hexlify(header.capsuleId)
  const wrappedKeys = await wrapDataKey(o.keyguardKey ?? dataKey, {
    sealer: w.sealer,
    recoveryPublicKey: generateX25519KeyPair().publicKey,
  })
  await w.keyStore.put({ capsuleId, wrappedKeys, metadata: { owner: w.owner.address } })
  if (o.register !== false) {
    await send(
      w.c.capsuleRegistry
        .connect(w.owner)
        .register(
          capsuleId,
          policy,
          o.registerCid ?? cid,
          hexlify(header.payload.contentCommitment),
          w.kg.libp2p.peerId.toMultihash().bytes,
          `0x${sealerKey.keyId}`,
        ),
    )
  }
  return { cid, capsuleId, header, bytes, dataKey }
}

/**
 * The grant a verifier test starts from: a data capsule under an `attested()` policy, and the
 * executor's access request for it (its nonce `nonce`, random by default). The grant id is
 * lowercase hex, as the hub's events and the verifier's rounds name it.
 */
export async function requestAttestedGrant(
  w: World,
  o: { nonce?: Uint8Array } = {},
): Promise<{ capsule: MadeCapsule; grantId: string }> {
  const policy = await deployPolicy(w.owner, attested(), {
    nodeRegistry: w.addresses.nodeRegistry,
  })
  const capsule = await makeCapsule(w, {
    plaintext: new TextEncoder().encode('job'),
    runtime: { kind: 'data' },
    policy: policy.address,
  })
  const ac = w.c.accessController
  const nonce = hexlify(o.nonce ?? randomBytes(32))
  const receipt = await (
    await ac
      .connect(w.executorWallet)
      .requestAccess(capsule.capsuleId, nonce, hexlify(w.measurement), '0x')
  ).wait()
  const grantId = ac.interface.parseLog(receipt?.logs[0] as never)?.args[0] as string
  return { capsule, grantId: grantId.toLowerCase() }
}

/** {@link requestAttestedGrant}, then the hub's `openJob` for it (sent by `w.other`). */
export async function openAttestedJob(w: World, o: { nonce?: Uint8Array } = {}) {
  const granted = await requestAttestedGrant(w, o)
  const { attestationHub: hub } = connectSettlement(w.addresses as never, w.other)
  await (await hub.connect(w.other).openJob(granted.grantId)).wait()
  return { ...granted, hub }
}

/** Anvil's accounts at `indices`, each on a provider of its own (a verifier's own sender). */
export function anvilWallets(w: World, indices: number[]): Wallet[] {
  return indices.map((i) =>
    (w.anvil.signers[i] as Wallet).connect(
      createProvider(w.anvil.rpcUrl, BigInt(w.addresses.chainId)),
    ),
  )
}

/** A block every `ms` (the hub's windows count blocks); `clearInterval` the result to stop. */
export function mineEvery(w: World, ms = 250): ReturnType<typeof setInterval> {
  return setInterval(() => {
    void w.anvil.provider.send('anvil_mine', ['0x1']).catch(() => {})
  }, ms)
}

export function jsBundle(source: string, data: Uint8Array | string): Uint8Array {
  const enc = new TextEncoder()
  const bundle: Bundle = {
    entry: 'main.js',
    files: { 'main.js': enc.encode(source) },
    data: typeof data === 'string' ? enc.encode(data) : data,
  }
  return encodeBundle(bundle)
}

export async function deployPolicyFor(w: World, expr: PolicyExpression): Promise<string> {
  const p = await deployPolicy(w.owner, expr, { nodeRegistry: w.addresses.nodeRegistry })
  return p.address
}

/** The receiver's view of the world's chain (its own provider). */
export function resultGrants(w: World): ResultGrantSource {
  return ethersResultGrants({
    chainId: w.addresses.chainId,
    accessController: w.addresses.accessController,
    runner: createProvider(w.anvil.rpcUrl, BigInt(w.addresses.chainId)),
  })
}

/**
 * The receiver's view of which receivers a capsule names (SPEC §3.4.3 check 11): the registry
 * (read as the executor node reads it) and the header bytes from `store` (default the
 * keyguard's IPFS node, where `makeCapsule` puts every capsule).
 */
export function resultCapsules(w: World, store: CapsuleStore = w.kgStore): ResultCapsuleSource {
  return headerResultCapsules({
    registry: ethersExecutorChain({ addresses: w.addresses, signer: w.other }),
    store,
  })
}

export interface ReceiverSide {
  node: DigicapNode
  keys: X25519KeyPair
}

export async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 20))
  }
}
