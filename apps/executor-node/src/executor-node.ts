/** The composition root: identity + config → libp2p/helia node, chain, executor, receiver. */
import { existsSync } from 'node:fs'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { generateX25519KeyPair, x25519PublicKey } from '@digicap/capsule-core'
import { removeStaleTemps, rpcChainId } from '@digicap/cli-kit'
import { createProvider } from '@digicap/contracts'
import {
  createExecutor,
  createResultReceiver,
  defaultSandboxes,
  type Executor,
  type ExecutorChain,
  ethersExecutorChain,
  ethersResultGrants,
  fileResultReplays,
  type ResultReceiver,
  type SandboxSet,
} from '@digicap/executor'
import { deriveOwnerIdentity, generateMnemonic, normalizeMnemonic } from '@digicap/keyguard'
import {
  type CapsuleStore,
  createDigicapNode,
  type DigicapNode,
  heliaCapsuleStore,
  privateKeyFromSeed,
} from '@digicap/p2p'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { formatEther, getBytes, hexlify, Wallet } from 'ethers'
import {
  checkTcti,
  DEFAULT_LISTEN,
  type ExecutorNodeConfig,
  executorNodePaths,
  loadConfig,
  writeJsonAtomic,
} from './config.ts'
import { AlreadyInitialisedError, ConfigError, InsufficientFundsError } from './errors.ts'

/** The stock sandboxes (QuickJS, WASI, `data` summarised), from `@digicap/executor`. */
export { defaultSandboxes }

export interface ExecutorIdentity {
  address: string
  /** secp256k1 key, 32 bytes. Secret. */
  ethereumPrivateKey: Uint8Array
  /** Ed25519 seed of the libp2p identity. Secret. */
  libp2pSeed: Uint8Array
}

/** Reads `identity.json` (the mnemonic) and derives the keys. */
export async function readIdentity(dataDir: string): Promise<ExecutorIdentity> {
  const file = executorNodePaths(dataDir).identity
  let raw: { mnemonic?: unknown }
  try {
    raw = JSON.parse(await readFile(file, 'utf8'))
  } catch (cause) {
    throw new ConfigError('Cannot read the identity file', { cause, details: { file } })
  }
  if (typeof raw.mnemonic !== 'string') {
    throw new ConfigError('The identity file has no mnemonic', { details: { file } })
  }
  const id = await deriveOwnerIdentity(raw.mnemonic)
  id.recoveryKeyPair.privateKey.fill(0)
  return {
    address: id.address,
    ethereumPrivateKey: id.ethereumPrivateKey,
    libp2pSeed: id.libp2pSeed,
  }
}

/** Reads a receiver key file (64 hex characters, the X25519 private key). */
export async function readReceiverKey(path: string): Promise<Uint8Array> {
  let text: string
  try {
    text = (await readFile(path, 'utf8')).trim()
  } catch (cause) {
    throw new ConfigError('Cannot read the receiver key file', { cause, details: { path } })
  }
  if (!/^(0x)?[0-9a-fA-F]{64}$/.test(text)) {
    throw new ConfigError('The receiver key file is not 32 bytes of hex', { details: { path } })
  }
  return getBytes(text.startsWith('0x') ? text : `0x${text}`)
}

export interface InitExecutorNodeOptions {
  dataDir: string
  rpcUrl: string
  /** More RPC URLs of the same chain for the registry checks' quorum. */
  rpcUrls?: string[] | undefined
  /** How many RPCs must agree (default: majority). */
  quorum?: number | undefined
  chainId?: number | undefined
  contracts: ExecutorNodeConfig['contracts']
  listen?: string[] | undefined
  bootstrap?: string[] | undefined
  keyguardAddrs?: string[] | undefined
  fast?: boolean | undefined
  /** The attestation TPM (see `ExecutorNodeConfig.tcti`). */
  tcti?: string | undefined
  /** Import these words instead of generating new ones. */
  mnemonic?: string | undefined
  force?: boolean | undefined
}

export interface InitResult {
  config: ExecutorNodeConfig
  address: string
  peerId: string
  receiverPublicKey: string
  /** True when the words were generated here (show them once). */
  generated: boolean
  mnemonic: string
}

/** Creates identity.json, receiver.key and config.json. */
export async function initExecutorNode(o: InitExecutorNodeOptions): Promise<InitResult> {
  const paths = executorNodePaths(o.dataDir)
  checkTcti(o.tcti, paths.config) // before anything is written
  if (existsSync(paths.config) || existsSync(paths.identity)) {
    if (!o.force) {
      throw new AlreadyInitialisedError('This data folder already holds an executor-node', {
        details: { dataDir: o.dataDir },
        hint: 'Use another --data-dir, or --force to move the old files aside.',
      })
    }
    const stamp = Date.now()
    for (const p of [paths.config, paths.identity, paths.receiverKey]) {
      if (existsSync(p)) await rename(p, `${p}.${stamp}.old`)
    }
  }
  const chainId = await rpcChainId(o.rpcUrl, o.chainId)
  const generated = o.mnemonic === undefined
  const mnemonic = generated ? generateMnemonic() : normalizeMnemonic(o.mnemonic as string)
  const id = await deriveOwnerIdentity(mnemonic)
  const peerId = peerIdFromPrivateKey(await privateKeyFromSeed(id.libp2pSeed)).toString()
  const receiver = generateX25519KeyPair()
  await writeJsonAtomic(paths.identity, { version: 1, mnemonic })
  await writeFile(paths.receiverKey, `${hexlify(receiver.privateKey).slice(2)}\n`, {
    mode: 0o600,
    flag: 'wx',
  })
  const config: ExecutorNodeConfig = {
    version: 1,
    dataDir: o.dataDir,
    rpcUrl: o.rpcUrl,
    ...(o.rpcUrls?.length ? { rpcUrls: o.rpcUrls } : {}),
    ...(o.quorum !== undefined ? { quorum: o.quorum } : {}),
    chainId,
    contracts: o.contracts,
    listen: o.listen ?? DEFAULT_LISTEN,
    bootstrap: o.bootstrap ?? [],
    keyguardAddrs: o.keyguardAddrs ?? [],
    fast: o.fast ?? false,
    ...(o.tcti === undefined ? {} : { tcti: o.tcti }),
  }
  await writeJsonAtomic(paths.config, config)
  const result: InitResult = {
    config,
    address: id.address,
    peerId,
    receiverPublicKey: hexlify(x25519PublicKey(receiver.privateKey)),
    generated,
    mnemonic,
  }
  id.ethereumPrivateKey.fill(0)
  id.libp2pSeed.fill(0)
  id.recoveryKeyPair.privateKey.fill(0)
  receiver.privateKey.fill(0)
  return result
}

export interface ExecutorNode {
  readonly config: ExecutorNodeConfig
  readonly node: DigicapNode
  readonly store: CapsuleStore
  readonly chain: ExecutorChain
  readonly wallet: Wallet
  readonly executor: Executor
  readonly peerId: string
  /** A receiver on this node's libp2p for `key` (the `receive` command). */
  receiver(privateKey: Uint8Array): ResultReceiver
  stop(): Promise<void>
}

export interface CreateExecutorNodeOptions {
  /** Override the listen addresses (tests: loopback port 0). */
  listen?: string[] | undefined
  /** Start the executor (key-release handler). Default true. */
  executor?: boolean | undefined
  sandboxes?: SandboxSet | undefined
}

/**
 * Loads the config and identity from `dataDir` and starts the node.
 * @example
 * ```ts
 * const en = await createExecutorNode(dataDir, process.env)
 * const run = await en.executor.runCapsule(cid)
 * await en.stop()
 * ```
 */
export async function createExecutorNode(
  dataDir: string,
  env: NodeJS.ProcessEnv = {},
  options: CreateExecutorNodeOptions = {},
): Promise<ExecutorNode> {
  const config = await loadConfig(dataDir, env)
  // Leftovers of a write cut by a crash (init's config or identity).
  await removeStaleTemps(dataDir)
  const id = await readIdentity(dataDir)
  const provider = createProvider(config.rpcUrl, config.chainId)
  const wallet = new Wallet(hexlify(id.ethereumPrivateKey), provider)
  id.ethereumPrivateKey.fill(0)
  const node = await createDigicapNode({
    privateKey: await privateKeyFromSeed(id.libp2pSeed),
    listen: options.listen ?? config.listen,
    bootstrap: config.bootstrap,
    dataDir: executorNodePaths(dataDir).ipfs,
  })
  id.libp2pSeed.fill(0)
  const store = heliaCapsuleStore(node.helia)
  const readProviders = [
    provider,
    ...(config.rpcUrls ?? []).map((url) => createProvider(url, config.chainId)),
  ]
  const chain = ethersExecutorChain({
    addresses: { chainId: String(config.chainId), ...config.contracts },
    signer: wallet,
    readProviders,
    ...(config.quorum !== undefined ? { quorum: config.quorum } : {}),
  })
  const executor = createExecutor({
    fast: config.fast,
    keyguardAddrs: config.keyguardAddrs,
    ...(config.fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs: config.fetchTimeoutMs }),
  })({
    libp2p: node.libp2p,
    store,
    chain,
    wallet,
    sandboxes: options.sandboxes ?? defaultSandboxes(),
  })
  if (options.executor !== false) await executor.start()
  return {
    config,
    node,
    store,
    chain,
    wallet,
    executor,
    peerId: node.peerId,
    receiver: (privateKey) =>
      createResultReceiver({ privateKey })({
        libp2p: node.libp2p,
        store,
        // Who may deliver what: the grants on this node's chain.
        grants: ethersResultGrants({
          chainId: config.chainId,
          accessController: config.contracts.accessController,
          runner: provider,
        }),
        // Spent run and grant ids survive a restart: a replay is refused after one too.
        replays: fileResultReplays({ path: executorNodePaths(dataDir).receiverReplays })({
          writeJsonAtomic,
        }),
      }),
    async stop() {
      await executor.stop()
      await node.stop()
      for (const p of readProviders) p.destroy()
    },
  }
}

/** Gas `register` may use, for the funds check (anvil measures under 200 000). */
const REGISTER_GAS = 300_000n

/**
 * Checks, before sending, that `wallet` can pay the registration's stake plus its gas: the
 * chain's own answer to an unfunded account names neither the account nor the amount.
 * @throws {InsufficientFundsError} naming the address, its balance and what to send it.
 */
export async function requireStakeFunds(wallet: Wallet, stake: bigint): Promise<void> {
  const provider = wallet.provider
  if (!provider) return
  const [balance, fees] = await Promise.all([
    provider.getBalance(wallet.address),
    provider.getFeeData(),
  ])
  const gas = REGISTER_GAS * (fees.maxFeePerGas ?? fees.gasPrice ?? 0n)
  const needed = stake + gas
  if (balance >= needed) return
  const eth = (wei: bigint) => `${formatEther(wei)} ETH`
  throw new InsufficientFundsError(
    `The account ${wallet.address} has ${eth(balance)}; register needs ${eth(needed)}`,
    {
      details: {
        address: wallet.address,
        balance: eth(balance),
        stake: eth(stake),
        gas: eth(gas),
        missing: eth(needed - balance),
      },
      hint: `Send at least ${eth(needed - balance)} to ${wallet.address} (the stake, ${eth(stake)}, plus gas), then run \`executor-node register\` again.`,
    },
  )
}
