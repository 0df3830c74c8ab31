/**
 * Real parts for the runtime tests: anvil with Digicap deployed, an executor registered with a
 * real libp2p node's peer id, a capsule under an `environment(measurement)` policy, a key store
 * holding its data key, and an executor-side key-release handler that opens the HPKE.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { decodeHpkeSealed, generateX25519KeyPair, hpkeOpen } from '@digicap/capsule-core'
import {
  connectDigicap,
  createProvider,
  type DigicapAddresses,
  type DigicapContracts,
  deployDigicap,
  environment,
} from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { ANVIL_MNEMONIC, type Anvil, startAnvil } from '@digicap/contracts/testing'
import { CONNECTION_MONITOR } from '@digicap/p2p/light'
import { handle, type KeyRelease, keyReleaseProtocol, type ReleaseAck } from '@digicap/protocol'
import { identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { HDNodeWallet, hexlify, parseEther, randomBytes, type Wallet } from 'ethers'
import { createLibp2p } from 'libp2p'
import {
  type ChainClient,
  createKeyStore,
  createReleaseJournal,
  ethersChainClient,
  type KeyStore,
  type ReleaseJournal,
  type Sealer,
  softwareSealer,
  wrapDataKey,
} from '../../src/index.ts'

export const GRANT_WINDOW = 600
export const MIN_STAKE = parseEther('0.01')
export const quietLogger = { info: () => {}, warn: () => {} }

/** A libp2p node on loopback, configured as a Digicap node; `connectionGater` as a keyguard's node takes its guard's. */
export async function createNode(
  options: { connectionGater?: ConnectionGater } = {},
): Promise<Libp2p> {
  return createLibp2p({
    ...(options.connectionGater ? { connectionGater: options.connectionGater } : {}),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // as a Digicap node (ADR 0041): libp2p's adaptive ping timeout (5 s floor) aborts a live
    // connection on a loaded box, resetting every stream on it
    connectionMonitor: CONNECTION_MONITOR,
    services: { identify: identify() },
  })
}

export interface Chain {
  anvil: Anvil
  addresses: DigicapAddresses
  c: DigicapContracts
  deployer: Wallet
  owner: Wallet
  executor: Wallet
  other: Wallet
  measurement: string
  policy: string
}

/** Anvil + Digicap + an environment policy; anvil is stopped if the deployment fails. */
export async function setupChain(
  options: { chainId?: number; auditWindow?: number } = {},
): Promise<Chain> {
  const anvil = await startAnvil(options.chainId === undefined ? {} : { chainId: options.chainId })
  try {
    return await deployed(anvil, options)
  } catch (err) {
    await anvil.stop()
    throw err
  }
}

/**
 * Digicap's deployment by chain id and audit window: the state anvil dumped right after it, and
 * its addresses. The deployment is the same transactions from the same accounts every time, so
 * later chains of a run (vitest runs the files in one worker, `isolate: false`) load that state
 * into their own fresh anvil (blocks, logs, nonces and all) instead of sending the ~3 s of
 * deployment transactions again; the environment policy is still deployed on each chain.
 */
const deployments = new Map<string, Promise<{ state: string; addresses: DigicapAddresses }>>()

async function deployedDigicap(
  anvil: Anvil,
  deployer: Wallet,
  options: { chainId?: number; auditWindow?: number },
): Promise<DigicapAddresses> {
  const key = `${options.chainId ?? 'default'}/${options.auditWindow ?? 'default'}`
  const kept = await deployments.get(key)?.catch(() => undefined)
  if (kept !== undefined) {
    if ((await anvil.provider.send('anvil_loadState', [kept.state])) !== true) {
      throw new Error('anvil_loadState refused the kept Digicap deployment')
    }
    return kept.addresses
  }
  const deployment = (async () => {
    const addresses = await deployDigicap(deployer, {
      minStake: MIN_STAKE,
      grantWindow: GRANT_WINDOW,
      disputeWindow: 3600,
      unbondingDelay: 3600,
      ...(options.auditWindow === undefined ? {} : { auditWindow: options.auditWindow }),
    })
    const state = String(await anvil.provider.send('anvil_dumpState', []))
    return { state, addresses }
  })()
  // A failed deployment is not kept: the next chain deploys again.
  deployments.set(key, deployment)
  deployment.catch(() => deployments.delete(key))
  return (await deployment).addresses
}

async function deployed(
  anvil: Anvil,
  options: { chainId?: number; auditWindow?: number },
): Promise<Chain> {
  const [deployer, owner, executor, other] = anvil.signers as Wallet[]
  if (owner?.address !== TEST_OWNER) throw new Error('chain.owner is not TEST_OWNER')
  const addresses = await deployedDigicap(anvil, deployer as Wallet, options)
  const c = connectDigicap(addresses, deployer as Wallet)
  const measurement = hexlify(randomBytes(32))
  const policy = await deployPolicy(owner as Wallet, environment(measurement), {
    nodeRegistry: addresses.nodeRegistry,
  })
  return {
    anvil,
    addresses,
    c,
    deployer: deployer as Wallet,
    owner: owner as Wallet,
    executor: executor as Wallet,
    other: other as Wallet,
    measurement,
    policy: policy.address,
  }
}

export async function send(tx: Promise<{ wait: () => Promise<unknown> }>): Promise<void> {
  await (await tx).wait()
}

/** Registers `wallet` as an executor with `node`'s peer id. */
export async function registerExecutor(chain: Chain, wallet: Wallet, node: Libp2p): Promise<void> {
  await send(
    chain.c.nodeRegistry
      .connect(wallet)
      .register(node.peerId.toMultihash().bytes, hexlify(randomBytes(32)), 1, { value: MIN_STAKE }),
  )
}

/** Registers a fresh capsule owned by `chain.owner` under `policy` (default: the environment policy). */
export async function registerCapsule(
  chain: Chain,
  keyguard: Libp2p,
  policy: string = chain.policy,
): Promise<string> {
  const capsuleId = hexlify(randomBytes(32))
  await send(
    chain.c.capsuleRegistry
      .connect(chain.owner)
      .register(
        capsuleId,
        policy,
        'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
        hexlify(randomBytes(32)),
        keyguard.peerId.toMultihash().bytes,
        hexlify(randomBytes(32)),
      ),
  )
  return capsuleId
}

export interface KeyguardParts {
  dir: string
  sealer: Sealer
  keyStore: KeyStore
  journal: ReleaseJournal
  cleanup(): Promise<void>
}

/** A data dir with a software sealer, key store and journal. */
export async function keyguardParts(dir?: string, sealer?: Sealer): Promise<KeyguardParts> {
  const root = dir ?? (await mkdtemp(join(tmpdir(), 'kg-runtime-')))
  const s =
    sealer ??
    softwareSealer({
      keyFile: join(root, 'sealer.pem'),
      allowInsecure: true,
      createIfMissing: true,
      logger: quietLogger,
    })
  return {
    dir: root,
    sealer: s,
    keyStore: await createKeyStore(join(root, 'keys')),
    journal: await createReleaseJournal(join(root, 'journal')),
    cleanup: () => rm(root, { recursive: true, force: true }),
  }
}

/**
 * `chain.owner` of every test chain (anvil's account 1): the owner key records name, as the
 * owner's seal pipeline does (`metadata.owner`, ADR 0071).
 */
export const TEST_OWNER = HDNodeWallet.fromPhrase(
  ANVIL_MNEMONIC,
  undefined,
  "m/44'/60'/0'/0",
).deriveChild(1).address

/**
 * Stores `dataKey` for `capsuleId` wrapped to the sealer and a throwaway recovery key, with
 * `metadata` (default: the owner is {@link TEST_OWNER}, as sealed by `chain.owner`).
 */
export async function storeKey(
  parts: KeyguardParts,
  capsuleId: string,
  dataKey: Uint8Array,
  metadata: Record<string, string> = { owner: TEST_OWNER },
) {
  const wrappedKeys = await wrapDataKey(dataKey, {
    sealer: parts.sealer,
    recoveryPublicKey: generateX25519KeyPair().publicKey,
  })
  await parts.keyStore.put({ capsuleId, wrappedKeys, metadata })
}

export function chainClientFor(chain: Chain, signer: Wallet = chain.owner, urls?: string[]) {
  const chainId = BigInt(chain.addresses.chainId)
  return ethersChainClient({
    providers: (urls ?? [chain.anvil.rpcUrl]).map((u) => createProvider(u, chainId)),
    signer,
    addresses: chain.addresses,
    chainId,
  })
}

/** `real` counting its NodeRegistry lookups (`nodePeerId`) through `onLookup`. */
export function countingLookups(real: ChainClient, onLookup: (node: string) => void): ChainClient {
  const counted: ChainClient = Object.create(real)
  counted.nodePeerId = (node) => {
    onLookup(node)
    return real.nodePeerId(node)
  }
  return counted
}

/** `real` whose fast-path audits fail as they do when the RPC is unreachable (NETWORK_ERROR). */
export function auditsDown<C extends ChainClient>(real: C): C {
  return {
    ...real,
    recordFastPathGrant: async () => {
      throw Object.assign(new Error('rpc down'), { code: 'NETWORK_ERROR' })
    },
  }
}

/** The executor side: a real node that opens key releases with its ephemeral private keys. */
export interface ExecutorSide {
  node: Libp2p
  /** Ephemeral private keys by hex public key. */
  keys: Map<string, Uint8Array>
  /** Opened data keys by grant id (hex). */
  received: Map<string, Uint8Array>
  releases: KeyRelease[]
  /** Called when a release arrives, before the ack is sent; may delay it. */
  beforeAck?: ((release: KeyRelease) => Promise<void>) | undefined
  newEphemeral(): string
  stop(): Promise<void>
}

export async function executorSide(): Promise<ExecutorSide> {
  const node = await createNode()
  const side: ExecutorSide = {
    node,
    keys: new Map(),
    received: new Map(),
    releases: [],
    newEphemeral() {
      const kp = generateX25519KeyPair()
      const pub = hexlify(kp.publicKey)
      side.keys.set(pub, kp.privateKey)
      return pub
    },
    stop: async () => {
      await node.stop()
    },
  }
  await handle(node, keyReleaseProtocol, async (release): Promise<ReleaseAck> => {
    side.releases.push(release)
    await side.beforeAck?.(release)
    for (const priv of side.keys.values()) {
      try {
        const key = await hpkeOpen(priv, decodeHpkeSealed(release.hpke), release.grantId)
        side.received.set(hexlify(release.grantId), key)
        return { grantId: release.grantId, status: 'ok' }
      } catch {
        // not this key
      }
    }
    return { grantId: release.grantId, status: 'open-failed' }
  })
  return side
}

/** The chain-path request an executor makes. Returns the grant id from the receipt. */
export async function requestAccess(
  chain: Chain,
  capsuleId: string,
  ephemeralKey: string,
  executor: Wallet = chain.executor,
): Promise<string> {
  const tx = await chain.c.accessController
    .connect(executor)
    .requestAccess(capsuleId, ephemeralKey, chain.measurement, '0x')
  const receipt = await tx.wait()
  const log = receipt?.logs
    .map((l) => {
      try {
        return chain.c.accessController.interface.parseLog(l)
      } catch {
        return null
      }
    })
    .find((p) => p?.name === 'AccessGranted')
  if (!log) throw new Error('no AccessGranted')
  return String(log.args[0]).toLowerCase()
}

/** Waits until `cond()` is true (polling), or fails after `ms` saying `what()` (what was seen). */
export async function until(
  cond: () => boolean | Promise<boolean>,
  ms = 10_000,
  what?: () => string,
): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting${what ? `: ${what()}` : ''}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Wraps a sealer to count its unwraps (TPM operations); `hold` delays each unwrap until it settles. */
export function instrumented(s: Sealer, hold?: Promise<void>): Sealer & { calls: () => number } {
  let calls = 0
  return {
    publicKey: () => s.publicKey(),
    wrap: (k) => s.wrap(k),
    describe: () => s.describe(),
    async unwrap(w) {
      calls++
      if (hold !== undefined) await hold
      return s.unwrap(w)
    },
    calls: () => calls,
  }
}
