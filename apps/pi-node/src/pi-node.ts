/**
 * The composition root: builds the sealer, key store, chain client and p2p node from a
 * config and runs the owner's operations. No protocol logic here: every step is a call into
 * a package (`capsule-core`, `contracts`, `keyguard`, `p2p`).
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
import {
  commitAndSealFile,
  DigicapError,
  generateCapsuleId,
  generateDataKey,
  type Receiver,
  type RuntimeKind,
  signCapsuleHeader,
} from '@digicap/capsule-core'
import { removeStaleTemps, withFileLock } from '@digicap/cli-kit'
import {
  connectDigicap,
  createProvider,
  type DigicapAddresses,
  decodeRevert,
  deployDigicap,
  deployPolicy,
  parsePolicyExpression,
} from '@digicap/contracts'
import {
  createKeyguard,
  createKeyStore,
  createReleaseJournal,
  ethersChainClient,
  initOwner,
  type Keyguard,
  type KeyguardEvent,
  type KeyguardStatus,
  type KeyStore,
  type Logger,
  readOwner,
  recoverKeys,
  type Sealer,
  type SealerDescription,
  softwareSealer,
  tpm2Sealer,
  unwrapOwnerSecrets,
  wrapDataKey,
} from '@digicap/keyguard'
import {
  announceCapsule,
  type CapsuleAnnouncement,
  createDigicapNode,
  type DigicapNode,
  heliaCapsuleStore,
  privateKeyFromSeed,
  subscribeCapsuleAnnouncements,
} from '@digicap/p2p'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { type JsonRpcProvider, Wallet } from 'ethers'
import {
  confirmationsFor,
  DEFAULT_LISTEN,
  loadConfig,
  type PiNodeConfig,
  piNodePaths,
  type SealerConfig,
  saveConfig,
  writeJsonAtomic,
} from './config.ts'
import {
  AlreadyInitialisedError,
  ChainUnreachableError,
  ConfigError,
  DaemonRunningError,
  InputFileError,
  NotInitialisedError,
  RuntimeUnsupportedError,
} from './errors.ts'

/** Progress of a long step: `phase` names it, `done`/`total` are bytes (or items). */
export type ProgressFn = (phase: string, done: number, total: number) => void

/**
 * Turns code + data into the plaintext of a code capsule at `outputPath`. Default:
 * {@link executorBundleEncoder} (`encodeBundle` of `@digicap/executor`).
 */
export type BundleEncoder = (input: {
  entry: string
  code: string
  data: string
  outputPath: string
}) => Promise<void>

export interface PiNodeComponents {
  /** Where warnings and events go. Default: silent. */
  logger?: Logger
  /** The code-capsule bundle encoder. Default {@link executorBundleEncoder}. */
  encodeBundle?: BundleEncoder
}

async function codeFiles(code: string, entry: string): Promise<Record<string, Uint8Array>> {
  const info = await stat(code).catch((cause) => {
    throw new InputFileError('Cannot read the code to seal', {
      cause,
      details: { code, reason: (cause as NodeJS.ErrnoException).code },
    })
  })
  if (info.isFile()) return { [entry]: await readFile(code) }
  if (!info.isDirectory()) {
    throw new InputFileError('--code is neither a file nor a folder', { details: { code } })
  }
  const files: Record<string, Uint8Array> = {}
  const entries = await readdir(code, { recursive: true, withFileTypes: true })
  for (const e of entries) {
    if (!e.isFile()) continue
    const full = join(e.parentPath, e.name)
    files[relative(code, full).split(sep).join('/')] = await readFile(full)
  }
  return files
}

/**
 * The executor's bundle format (`encodeBundle({ entry, files, data })` of
 * `@digicap/executor`): `code` is one file (stored under the name `entry`) or a folder (every
 * file under its relative path, `entry` must be one of them); `data` is the file being sealed.
 * The bundle is built in memory (its size is capped by the executor's bundle limit).
 *
 * @throws {InputFileError} if the code cannot be read; the executor's `BundleFormatError`
 *   (`BUNDLE_FORMAT`) for a bad entry or file name.
 */
export const executorBundleEncoder: BundleEncoder = async ({ entry, code, data, outputPath }) => {
  const { encodeBundle } = await import('@digicap/executor')
  const bytes = encodeBundle({
    entry,
    files: await codeFiles(code, entry),
    data: await readFile(data),
  })
  await writeFile(outputPath, bytes, { mode: 0o600 })
}

const silent: Logger = { info() {}, warn() {} }

/** 1000 ETH, what `init --deploy` gives the owner and the operator on a dev chain. */
const DEV_FUNDS = '0x3635c9adc5dea00000'

/**
 * The keyguard operator account (derived from the mnemonic, m/44'/60'/0'/0/1): it signs the
 * fast-path audit records, so they never race the owner's own transactions for a nonce.
 */
export interface OperatorStatus {
  /** The operator's address; absent for a version-1 owner file (run `recover` to add it). */
  address?: string
  /** `CapsuleRegistry.isOperator(owner, operator)`; absent if the chain did not answer. */
  approved?: boolean
  /** The operator's ETH balance (pays the audit transactions' gas). */
  balanceWei?: string
  /** What is missing and how to fix it. */
  warning?: string
}

function operatorWarning(s: OperatorStatus): string | undefined {
  if (s.address === undefined) {
    return 'This owner file predates the keyguard operator account: fast-path audit records use the owner account and may race its transactions. Run `pi-node recover` with the words to add the operator.'
  }
  const missing: string[] = []
  if (s.approved === false) {
    missing.push(
      `not approved by the owner (\`pi-node serve\` approves it once the owner has ETH, or send CapsuleRegistry.setOperator(${s.address}, true) from the owner)`,
    )
  }
  if (s.balanceWei === '0') {
    missing.push(`no ETH for gas (send some to ${s.address}, e.g. 0.05 ETH)`)
  }
  return missing.length
    ? `Keyguard operator ${s.address}: ${missing.join('; ')}. Fast-path audit records fail until then.`
    : undefined
}

/** Reads the operator's approval and balance. @throws whatever the RPC throws */
async function readOperator(
  provider: JsonRpcProvider,
  contracts: PiNodeConfig['contracts'],
  owner: string,
  operator: string,
): Promise<OperatorStatus> {
  const { capsuleRegistry } = connectDigicap(contracts, provider)
  const [approved, balance] = await Promise.all([
    capsuleRegistry.getFunction('isOperator')(owner, operator) as Promise<boolean>,
    provider.getBalance(operator),
  ])
  const s: OperatorStatus = {
    address: operator,
    approved: Boolean(approved),
    balanceWei: balance.toString(),
  }
  const warning = operatorWarning(s)
  return warning ? { ...s, warning } : s
}

/**
 * Makes sure the owner approved its keyguard operator (`setOperator(operator, true)`, sent by
 * the owner if it has ETH for it); with `devFund`, gives an unfunded operator dev-chain ETH
 * (`anvil_setBalance`). Never throws: what is still missing is in `warning`.
 */
async function ensureOperator(
  provider: JsonRpcProvider,
  contracts: PiNodeConfig['contracts'],
  ownerWallet: Wallet,
  operator: string,
  options: { devFund: boolean; logger: Logger },
): Promise<OperatorStatus> {
  try {
    let s = await readOperator(provider, contracts, ownerWallet.address, operator)
    if (options.devFund && s.balanceWei === '0') {
      await provider.send('anvil_setBalance', [operator, DEV_FUNDS]).catch((err) => {
        options.logger.warn('cannot fund the keyguard operator', { code: errorInfo(err).code })
      })
    }
    if (!s.approved && (await provider.getBalance(ownerWallet.address)) > 0n) {
      const { capsuleRegistry } = connectDigicap(contracts, ownerWallet)
      await (await capsuleRegistry.getFunction('setOperator')(operator, true)).wait()
      options.logger.info('keyguard operator approved', { operator })
    }
    s = await readOperator(provider, contracts, ownerWallet.address, operator)
    return s
  } catch (err) {
    const info = errorInfo(decodeRevert(err))
    options.logger.warn('cannot check or approve the keyguard operator', info)
    return {
      address: operator,
      warning: `Keyguard operator ${operator}: cannot check or approve it (error[${info.code}]). Fast-path audit records fail until the owner approves it.`,
    }
  }
}

/**
 * Runs `fn`, which sends (and waits for) transactions from the owner account, while holding
 * the data folder's owner-transaction lock: two `pi-node seal` (or `seal` and `serve`) at once
 * would otherwise both read the same pending nonce and one transaction would be dropped. Held
 * only around sending, never around sealing or adding blocks.
 * @throws {LockTimeoutError} if another process holds it for more than two minutes.
 */
export function ownerTransactions<T>(
  paths: ReturnType<typeof piNodePaths>,
  fn: () => Promise<T>,
): Promise<T> {
  return withFileLock(paths.ownerLock, fn, { what: "owner account's transaction lock" })
}

/** The sealer a config describes. `createIfMissing` is for `init` and `recover`. */
export function createSealer(
  config: SealerConfig,
  options: { createIfMissing?: boolean; logger?: Logger } = {},
): Sealer {
  if (config.kind === 'tpm2') {
    return tpm2Sealer({
      tcti: config.tcti,
      ...(config.handle !== undefined ? { handle: config.handle } : {}),
      createIfMissing: options.createIfMissing ?? false,
      ...(options.logger ? { logger: options.logger } : {}),
    })
  }
  return softwareSealer({
    keyFile: config.keyFile,
    allowInsecure: config.allowInsecure,
    createIfMissing: options.createIfMissing ?? false,
    ...(options.logger ? { logger: options.logger } : {}),
  })
}

/** libp2p peer id string of a raw 32-byte Ed25519 public key. */
export function peerIdOfPublicKey(raw: Uint8Array): string {
  return peerIdFromPublicKey(publicKeyFromRaw(raw)).toString()
}

function hex(bytes: Uint8Array): `0x${string}` {
  return `0x${Buffer.from(bytes).toString('hex')}`
}

async function rpc(url: string, method: string, params: unknown[], timeoutMs = 5000) {
  let res: Response
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
      signal: AbortSignal.timeout(timeoutMs),
    })
  } catch (cause) {
    throw new ChainUnreachableError('The chain RPC does not answer', {
      cause,
      details: { rpcUrl: url, method },
      hint: 'Check --rpc-url / DIGICAP_RPC_URL and that the node is running.',
    })
  }
  const body = (await res.json().catch(() => ({}))) as {
    result?: unknown
    error?: { message?: string }
  }
  if (!res.ok || body.error || body.result === undefined) {
    throw new ChainUnreachableError('The chain RPC answered with an error', {
      details: { rpcUrl: url, method, status: res.status, error: body.error?.message },
    })
  }
  return body.result
}

/** Asks the chain for its id. @throws {ChainUnreachableError} */
export async function fetchChainId(rpcUrl: string): Promise<number> {
  return Number(BigInt((await rpc(rpcUrl, 'eth_chainId', [])) as string))
}

export interface InitPiNodeOptions {
  dataDir: string
  rpcUrl: string
  /** Default: asked from the chain. */
  chainId?: number
  sealer: SealerConfig
  /**
   * Deploy the Digicap contracts (idempotent, addresses in `<dataDir>/deployments`). On a dev
   * chain (anvil) the owner account and the keyguard operator account are funded with
   * `anvil_setBalance` first.
   */
  deploy?: boolean
  /** Existing contract addresses (when not deploying). */
  contracts?: PiNodeConfig['contracts']
  listen?: string[]
  /** Public multiaddrs `serve` advertises (see {@link PiNodeConfig.announce}). */
  announce?: string[]
  bootstrap?: string[]
  /** More RPC URLs of the same chain for the keyguard's quorum. */
  rpcUrls?: string[]
  quorum?: number
  /** First block the grant watcher scans. Default: the deployment block with `deploy`. */
  startBlock?: number
  /** Saved as `keyguard` in the config. */
  keyguard?: PiNodeConfig['keyguard']
  /** Move an existing node's config and owner file aside (`*.replaced-<time>`) instead of refusing. */
  force?: boolean
  /** Words to restore instead of a new mnemonic. */
  mnemonic?: string
}

export interface InitPiNodeResult {
  config: PiNodeConfig
  /** The 24 words: show once, for paper. */
  mnemonic: string
  owner: { address: string; peerId: string; recoveryKeyId: string }
  /** The keyguard operator: approved by the owner here when the owner has ETH for it. */
  operator: OperatorStatus
  sealer: SealerDescription
  deployed: boolean
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/**
 * `init`: creates the sealer key, the owner (mnemonic, Ethereum key, recovery key, libp2p
 * seed) and the config; deploys the contracts with `deploy`.
 *
 * @throws {AlreadyInitialisedError} if the folder holds a node and `force` is not set.
 * @throws {ChainUnreachableError} | {@link ConfigError} | keyguard's sealer errors.
 */
export async function initPiNode(
  options: InitPiNodeOptions,
  components: PiNodeComponents = {},
): Promise<InitPiNodeResult> {
  const paths = piNodePaths(options.dataDir)
  const logger = components.logger ?? silent
  const present = (await exists(paths.config)) || (await exists(paths.owner))
  if (present && !options.force) {
    throw new AlreadyInitialisedError('This data folder already holds a pi-node', {
      details: { dataDir: options.dataDir },
      hint: 'Use another --data-dir, or --force to move the old config and owner file aside.',
    })
  }
  if (!options.deploy && !options.contracts) {
    throw new ConfigError('No contract addresses', {
      hint: 'Pass --deploy (dev chain) or the addresses (--capsule-registry, --node-registry, --access-controller).',
    })
  }
  const chainId = await fetchChainId(options.rpcUrl)
  if (options.chainId !== undefined && options.chainId !== chainId) {
    throw new ChainUnreachableError('The RPC serves another chain', {
      details: { expected: options.chainId, actual: chainId },
    })
  }
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 })
  await removeLeftoverTemps(paths)
  if (present) {
    const suffix = `replaced-${Date.now()}`
    for (const p of [paths.config, paths.owner]) {
      if (await exists(p)) await rename(p, `${p}.${suffix}`)
    }
  }
  const sealer = createSealer(options.sealer, { createIfMissing: true, logger })
  await sealer.publicKey()
  const { mnemonic, owner } = await initOwner({
    path: paths.owner,
    sealer,
    ...(options.mnemonic !== undefined ? { mnemonic: options.mnemonic } : {}),
  })
  let contracts = options.contracts
  let startBlock = options.startBlock
  let operator: OperatorStatus = { address: owner.operatorAddress as string }
  const provider = createProvider(options.rpcUrl, chainId)
  try {
    if (options.deploy) {
      const balance = await provider.getBalance(owner.address)
      if (balance === 0n) {
        await provider.send('anvil_setBalance', [owner.address, DEV_FUNDS]).catch((cause) => {
          throw new ChainUnreachableError('The owner account has no ETH to deploy with', {
            cause,
            details: { owner: owner.address },
            hint: 'Fund the owner address, or use a dev chain (anvil) with --deploy.',
          })
        })
      }
    }
    const secrets = await unwrapOwnerSecrets(paths.owner, sealer)
    try {
      const wallet = new Wallet(hex(secrets.ethereumPrivateKey), provider)
      if (options.deploy) {
        const a: DigicapAddresses = await deployDigicap(wallet, {
          deploymentsDir: paths.deployments,
          replaceStale: true,
        })
        startBlock ??= a.deployBlock
        contracts = {
          capsuleRegistry: a.capsuleRegistry,
          nodeRegistry: a.nodeRegistry,
          accessController: a.accessController,
        }
      }
      operator = await ownerTransactions(paths, () =>
        ensureOperator(
          provider,
          contracts as PiNodeConfig['contracts'],
          wallet,
          owner.operatorAddress as string,
          { devFund: options.deploy === true, logger },
        ),
      )
    } finally {
      secrets.ethereumPrivateKey.fill(0)
      secrets.operatorPrivateKey?.fill(0)
      secrets.libp2pSeed.fill(0)
    }
  } finally {
    provider.destroy()
  }
  const config: PiNodeConfig = {
    version: 1,
    dataDir: options.dataDir,
    rpcUrl: options.rpcUrl,
    chainId,
    contracts: contracts as PiNodeConfig['contracts'],
    sealer: options.sealer,
    listen: options.listen ?? DEFAULT_LISTEN,
    bootstrap: options.bootstrap ?? [],
    ...(options.announce?.length ? { announce: options.announce } : {}),
    ...(options.rpcUrls?.length ? { rpcUrls: options.rpcUrls } : {}),
    ...(options.quorum !== undefined ? { quorum: options.quorum } : {}),
    ...(startBlock !== undefined ? { startBlock } : {}),
    ...(options.keyguard ? { keyguard: options.keyguard } : {}),
  }
  await saveConfig(config)
  return {
    config,
    mnemonic,
    owner: {
      address: owner.address,
      peerId: peerIdOfPublicKey(owner.libp2pPublicKey),
      recoveryKeyId: owner.recoveryKeyId,
    },
    operator,
    sealer: await sealer.describe(),
    deployed: options.deploy === true,
  }
}

export interface SealOptions {
  /** The data file. */
  file: string
  /** Policy expression, e.g. `all(minReputation(50), maxRuns(3))`. */
  policy: string
  runtime?: RuntimeKind
  /** Entry of a code capsule. */
  entry?: string
  /** Code file or folder of a code capsule. */
  code?: string
  receivers?: Receiver[]
  memoryLimit?: number
  timeLimit?: number
  onProgress?: ProgressFn
  /** How long to wait for a subscriber when announcing through a running `serve`. Default 5000. */
  announceTimeoutMs?: number
}

export interface SealResult {
  capsuleId: string
  cid: string
  policy: string
  policyTransaction: string
  registerTransaction: string
  capsulePath: string
  capsuleSize: number
  plaintextSize: number
  /** Whether the capsule was announced on gossipsub (through a running `serve`). */
  announced: { ok: boolean; recipients?: number; reason?: string }
}

export interface PiNodeStatus {
  dataDir: string
  rpcUrl: string
  chainId: number
  contracts: PiNodeConfig['contracts']
  sealer: SealerDescription | { error: { code: string; message: string } }
  owner: { address: string; peerId: string; recoveryKeyId: string; createdAt: string }
  chain:
    | { reachable: true; head: number; ownerBalanceWei: string }
    | { reachable: false; error: { code: string; message: string } }
  /** The keyguard operator account: address, approval by the owner, balance, warning. */
  operator: OperatorStatus
  capsules: number
  daemon: {
    running: boolean
    pid?: number
    peerId?: string
    multiaddrs?: string[]
    /** The daemon keyguard's `status()`, as last written to `serve.json`. */
    keyguard?: KeyguardStatus
    /** When the daemon last refreshed `serve.json`. */
    updatedAt?: string
  }
  listen: string[]
  announce: string[]
  bootstrap: string[]
}

export interface RecoverOptions {
  mnemonic: string
  passphrase?: string
  /** Replace the sealer (e.g. the new TPM's TCTI); saved to the config. */
  sealer?: SealerConfig
  onProgress?: ProgressFn
}

export interface RecoverResult {
  recovered: string[]
  failed: { capsuleId: string; code: string }[]
  owner: string
  sealer: SealerDescription
}

export interface ServeOptions {
  /** Called for each valid capsule announcement heard on gossipsub. */
  onAnnouncement?: (ann: CapsuleAnnouncement, from: string) => void
  /** Called for each keyguard event (releases, refusals, fast path, audit). */
  onKeyguardEvent?: (event: KeyguardEvent) => void
  /** Override the config's `keyguard.fastPath`. */
  fastPath?: boolean
  /** Override the config's `keyguard.confirmations`. */
  confirmations?: number
  /** How often `serve.json` (with the keyguard status) is rewritten, ms. Default 5000. */
  statusIntervalMs?: number
}

export interface RunningPiNode {
  readonly node: DigicapNode
  readonly keyguard: Keyguard
  readonly peerId: string
  multiaddrs(): string[]
  /** Pinned capsules (from the key store) at start. */
  readonly pinned: number
  /** Stops the keyguard, then the node, and removes `serve.json`. Idempotent. */
  stop(): Promise<void>
}

export interface PiNode {
  readonly config: PiNodeConfig
  readonly sealer: Sealer
  readonly keyStore: KeyStore
  seal(options: SealOptions): Promise<SealResult>
  status(): Promise<PiNodeStatus>
  recover(options: RecoverOptions): Promise<RecoverResult>
  serve(options?: ServeOptions): Promise<RunningPiNode>
}

interface ServeFile {
  pid: number
  peerId: string
  multiaddrs: string[]
  startedAt: string
  updatedAt?: string
  keyguard?: KeyguardStatus
}

/** Keyguard events written to the log. */
const KEYGUARD_EVENTS = [
  'grant-accepted',
  'grant-refused',
  'reorg',
  'released',
  'release-failed',
  'fast-path-granted',
  'fast-path-refused',
  'audit-recorded',
  'audit-alert',
] as const

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function readServeFile(path: string): Promise<ServeFile | undefined> {
  try {
    const s = JSON.parse(await readFile(path, 'utf8')) as ServeFile
    if (typeof s.pid !== 'number' || !Array.isArray(s.multiaddrs)) return undefined
    return alive(s.pid) ? s : undefined
  } catch {
    return undefined
  }
}

/**
 * Removes the temp files of atomic writes a crash left behind in the folders pi-node writes
 * into itself: the data folder (config, owner file, `serve.json`) and each capsule's folder.
 * The key store and the keyguard clean their own folders when they open. Temps of a running
 * writer (a concurrent `seal`, the daemon) are kept: their pid is alive.
 */
async function removeLeftoverTemps(paths: ReturnType<typeof piNodePaths>): Promise<void> {
  const dirs = [dirname(paths.config)]
  const capsules = await readdir(paths.capsules, { withFileTypes: true }).catch(() => [])
  for (const d of capsules) if (d.isDirectory()) dirs.push(join(paths.capsules, d.name))
  for (const dir of dirs) await removeStaleTemps(dir)
}

function errorInfo(err: unknown): { code: string; message: string } {
  if (err instanceof DigicapError) return { code: err.code, message: err.shortMessage }
  return { code: 'UNKNOWN', message: (err as Error)?.message ?? String(err) }
}

/**
 * Builds a pi-node from its config. Reads nothing secret until an operation needs it.
 *
 * @throws {NotInitialisedError} if the owner file is missing.
 * @example
 * ```ts
 * const pi = await createPiNode(await loadConfig('/var/lib/digicap'))
 * const { capsuleId, cid } = await pi.seal({ file: 'photo.jpg', policy: 'maxRuns(3)' })
 * ```
 */
export async function createPiNode(
  config: PiNodeConfig,
  components: PiNodeComponents = {},
): Promise<PiNode> {
  const paths = piNodePaths(config.dataDir)
  const logger = components.logger ?? silent
  const owner = await readOwner(paths.owner)
  if (!owner) {
    throw new NotInitialisedError('No owner file in this data folder', {
      details: { dataDir: config.dataDir },
      hint: 'Run `pi-node init` (or `pi-node recover` with the paper words).',
    })
  }
  await removeLeftoverTemps(paths)
  const sealer = createSealer(config.sealer, { logger })
  const keyStore = await createKeyStore(paths.keys)
  const ownerPeerId = peerIdOfPublicKey(owner.libp2pPublicKey)

  async function withOwnerWallet<T>(
    fn: (wallet: Wallet, ethKey: Uint8Array) => Promise<T>,
  ): Promise<T> {
    const secrets = await unwrapOwnerSecrets(paths.owner, sealer)
    secrets.libp2pSeed.fill(0)
    const provider = createProvider(config.rpcUrl, config.chainId)
    try {
      return await fn(
        new Wallet(hex(secrets.ethereumPrivateKey), provider),
        secrets.ethereumPrivateKey,
      )
    } finally {
      secrets.ethereumPrivateKey.fill(0)
      provider.destroy()
    }
  }

  async function seal(options: SealOptions): Promise<SealResult> {
    const progress = options.onProgress ?? (() => {})
    const runtime = options.runtime ?? 'data'
    const rule = parsePolicyExpression(options.policy)
    await fetchChainId(config.rpcUrl).then((id) => {
      if (id !== config.chainId)
        throw new ChainUnreachableError('The RPC serves another chain', {
          details: { expected: config.chainId, actual: id },
        })
    })
    const input = await stat(options.file).catch((cause) => {
      throw new InputFileError('Cannot read the file to seal', {
        cause,
        details: { file: options.file, reason: (cause as NodeJS.ErrnoException).code },
      })
    })
    if (!input.isFile()) {
      throw new InputFileError('The file to seal is not a regular file', {
        details: { file: options.file },
      })
    }
    if (runtime !== 'data' && runtime !== 'quickjs' && runtime !== 'wasi') {
      throw new RuntimeUnsupportedError('Unknown capsule runtime', { details: { runtime } })
    }
    if (runtime !== 'data' && (!options.entry || !options.code)) {
      throw new ConfigError('A code capsule needs --entry and --code', { details: { runtime } })
    }
    if (runtime === 'data' && (options.entry !== undefined || options.code !== undefined)) {
      throw new ConfigError('--entry and --code are for code capsules (--runtime quickjs|wasi)', {
        details: { runtime },
      })
    }
    const capsuleIdBytes = generateCapsuleId()
    const capsuleId = hex(capsuleIdBytes)
    const dir = join(paths.capsules, capsuleId)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    let plaintextPath = options.file
    if (runtime !== 'data' && options.entry && options.code) {
      plaintextPath = join(dir, 'bundle.partial')
      try {
        await (components.encodeBundle ?? executorBundleEncoder)({
          entry: options.entry,
          code: options.code,
          data: options.file,
          outputPath: plaintextPath,
        })
      } catch (err) {
        await rm(dir, { recursive: true, force: true })
        throw err
      }
    }
    const plaintextSize = (await stat(plaintextPath)).size
    return withOwnerWallet(async (wallet, ethKey) => {
      const policy = await ownerTransactions(paths, () =>
        deployPolicy(wallet, rule, { nodeRegistry: config.contracts.nodeRegistry }),
      )
      await writeFile(join(dir, 'policy.sol'), policy.source, { mode: 0o600 })
      await writeJsonAtomic(join(dir, 'policy.json'), {
        address: policy.address,
        transactionHash: policy.transactionHash,
        expression: options.policy,
        contractName: policy.compiled.contractName,
        solcVersion: policy.compiled.solcVersion,
        settings: policy.compiled.settings,
        metadata: JSON.parse(policy.compiled.metadata),
      })
      const dataKey = generateDataKey()
      try {
        const wrappedKeys = await wrapDataKey(dataKey, {
          sealer,
          recoveryPublicKey: owner!.recoveryPublicKey,
        })
        const sealerKey = await sealer.publicKey()
        const capsulePath = join(dir, 'capsule.bin')
        // File helper, not streams: one read of the plaintext for the commitment and the
        // encryption, on every core, memory flat for any size; written to a temp file and
        // renamed into place, so nothing is half-written on failure.
        const sealed = await commitAndSealFile({
          owner: owner!.address,
          policy: {
            chainId: config.chainId,
            registry: config.contracts.capsuleRegistry as `0x${string}`,
            policy: policy.address as `0x${string}`,
          },
          keyguard: { peerId: ownerPeerId, keyId: sealerKey.keyId, wrapScheme: sealerKey.scheme },
          runtime: {
            kind: runtime,
            ...(options.entry !== undefined && runtime !== 'data' ? { entry: options.entry } : {}),
            ...(options.memoryLimit !== undefined ? { memoryLimit: options.memoryLimit } : {}),
            ...(options.timeLimit !== undefined ? { timeLimit: options.timeLimit } : {}),
          },
          receivers: options.receivers ?? [],
          wrappedKeys,
          dataKey,
          capsuleId: capsuleIdBytes,
          sign: (h) => signCapsuleHeader(h, ethKey),
          input: plaintextPath,
          output: capsulePath,
          onProgress: (n) => progress('seal', n, plaintextSize),
        })
        if (plaintextPath !== options.file) await rm(plaintextPath, { force: true })
        const capsuleSize = (await stat(capsulePath)).size

        // Blocks go to the on-disk blockstore that `serve` provides; announce through
        // a running `serve` if there is one.
        const node = await createDigicapNode({
          dataDir: paths.ipfs,
          datastore: 'memory',
          listen: [],
        })
        let cid: string
        let announced: SealResult['announced']
        try {
          cid = await heliaCapsuleStore(node.helia).put(
            { path: capsulePath },
            { onProgress: (n) => progress('add', n, capsuleSize) },
          )
          await keyStore.put({
            capsuleId,
            wrappedKeys,
            metadata: {
              cid,
              policy: policy.address,
              chainId: String(config.chainId),
              registry: config.contracts.capsuleRegistry,
              runtime,
            },
          })
          const { capsuleRegistry } = connectDigicap(config.contracts, wallet)
          const tx = await ownerTransactions(paths, async () => {
            const sent = await capsuleRegistry.register(
              capsuleId,
              policy.address,
              cid,
              hex(sealed.header.payload.plaintextCommitment),
              new TextEncoder().encode(ownerPeerId),
              `0x${sealerKey.keyId}`,
            )
            await sent.wait()
            return sent
          })
          const registerTransaction = tx.hash
          await writeJsonAtomic(join(dir, 'capsule.json'), {
            capsuleId,
            cid,
            policy: policy.address,
            registerTransaction,
            plaintextSize,
            capsuleSize,
            runtime,
            createdAt: new Date().toISOString(),
          })
          announced = await announceVia(
            node,
            {
              capsuleId,
              cid,
              owner: owner!.address,
              registry: config.contracts.capsuleRegistry,
              chainId: config.chainId,
              keyguardPeer: ownerPeerId,
            },
            options.announceTimeoutMs ?? 5000,
          )
          return {
            capsuleId,
            cid,
            policy: policy.address,
            policyTransaction: policy.transactionHash,
            registerTransaction,
            capsulePath,
            capsuleSize,
            plaintextSize,
            announced,
          }
        } finally {
          await node.stop()
        }
      } finally {
        dataKey.fill(0)
      }
    })
  }

  async function announceVia(
    node: DigicapNode,
    ann: CapsuleAnnouncement,
    timeoutMs: number,
  ): Promise<SealResult['announced']> {
    const serve = await readServeFile(paths.serve)
    if (!serve) return { ok: false, reason: 'serve-not-running' }
    const addr =
      serve.multiaddrs.find((m) => m.startsWith('/ip4/127.0.0.1/')) ?? serve.multiaddrs[0]
    if (!addr) return { ok: false, reason: 'serve-has-no-address' }
    try {
      await node.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(timeoutMs) })
      const { recipients } = await announceCapsule(node, ann, { timeoutMs })
      return { ok: true, recipients }
    } catch (err) {
      logger.warn('announcement failed', { code: errorInfo(err).code })
      return { ok: false, reason: errorInfo(err).code }
    }
  }

  async function status(): Promise<PiNodeStatus> {
    const sealerInfo = await sealer.describe().catch((err) => ({ error: errorInfo(err) }))
    let chain: PiNodeStatus['chain']
    let operator: OperatorStatus =
      owner!.operatorAddress === undefined
        ? { warning: operatorWarning({}) as string }
        : { address: owner!.operatorAddress }
    try {
      const id = await fetchChainId(config.rpcUrl)
      if (id !== config.chainId)
        throw new ChainUnreachableError('The RPC serves another chain', {
          details: { expected: config.chainId, actual: id },
        })
      const head = Number(BigInt((await rpc(config.rpcUrl, 'eth_blockNumber', [])) as string))
      const balance = BigInt(
        (await rpc(config.rpcUrl, 'eth_getBalance', [owner!.address, 'latest'])) as string,
      )
      chain = { reachable: true, head, ownerBalanceWei: balance.toString() }
      if (owner!.operatorAddress !== undefined) {
        const provider = createProvider(config.rpcUrl, config.chainId)
        try {
          operator = await readOperator(
            provider,
            config.contracts,
            owner!.address,
            owner!.operatorAddress,
          )
        } catch (err) {
          operator = {
            address: owner!.operatorAddress,
            warning: `Cannot read the keyguard operator (error[${errorInfo(decodeRevert(err)).code}])`,
          }
        } finally {
          provider.destroy()
        }
      }
    } catch (err) {
      chain = { reachable: false, error: errorInfo(err) }
    }
    const serve = await readServeFile(paths.serve)
    return {
      dataDir: config.dataDir,
      rpcUrl: config.rpcUrl,
      chainId: config.chainId,
      contracts: config.contracts,
      sealer: sealerInfo,
      owner: {
        address: owner!.address,
        peerId: ownerPeerId,
        recoveryKeyId: owner!.recoveryKeyId,
        createdAt: owner!.createdAt,
      },
      chain,
      operator,
      capsules: (await keyStore.list()).length,
      daemon: serve
        ? {
            running: true,
            pid: serve.pid,
            peerId: serve.peerId,
            multiaddrs: serve.multiaddrs,
            ...(serve.keyguard ? { keyguard: serve.keyguard } : {}),
            ...(serve.updatedAt ? { updatedAt: serve.updatedAt } : {}),
          }
        : { running: false },
      listen: config.listen,
      announce: config.announce ?? [],
      bootstrap: config.bootstrap,
    }
  }

  async function recover(options: RecoverOptions): Promise<RecoverResult> {
    const sealerConfig = options.sealer ?? config.sealer
    const newSealer = createSealer(sealerConfig, { createIfMissing: true, logger })
    const result = await recoverKeys({
      mnemonic: options.mnemonic,
      ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
      store: keyStore,
      newSealer,
      ownerPath: paths.owner,
      ...(options.onProgress
        ? {
            onProgress: (done: number, total: number) =>
              options.onProgress?.('recover', done, total),
          }
        : {}),
    })
    if (options.sealer) {
      const onDisk = await loadConfig(config.dataDir)
      await saveConfig({ ...onDisk, sealer: options.sealer })
    }
    return {
      recovered: result.recovered,
      failed: result.failed,
      owner: owner!.address,
      sealer: await newSealer.describe(),
    }
  }

  async function serve(options: ServeOptions = {}): Promise<RunningPiNode> {
    const running = await readServeFile(paths.serve)
    if (running && running.pid !== process.pid) {
      throw new DaemonRunningError('pi-node serve is already running', {
        details: { pid: running.pid },
        hint: 'Stop it first (systemctl stop pi-node, or kill the pid).',
      })
    }
    const secrets = await unwrapOwnerSecrets(paths.owner, sealer)
    let privateKey: Awaited<ReturnType<typeof privateKeyFromSeed>>
    // The keyguard operator's key signs the fast path's on-chain audit records, so the daemon
    // keeps it (inside an ethers Wallet) for its lifetime. The owner's key is used only at start,
    // to approve the operator if it is not yet. Byte copies are zeroed.
    const ownerKeyHex = hex(secrets.ethereumPrivateKey)
    const operatorKeyHex =
      secrets.operatorPrivateKey === undefined ? undefined : hex(secrets.operatorPrivateKey)
    try {
      privateKey = await privateKeyFromSeed(secrets.libp2pSeed)
    } finally {
      secrets.libp2pSeed.fill(0)
      secrets.ethereumPrivateKey.fill(0)
      secrets.operatorPrivateKey?.fill(0)
    }
    const node = await createDigicapNode({
      privateKey,
      dataDir: paths.ipfs,
      listen: config.listen,
      ...(config.announce?.length ? { announce: config.announce } : {}),
      bootstrap: config.bootstrap,
    })
    const providers = [config.rpcUrl, ...(config.rpcUrls ?? [])].map((url) =>
      createProvider(url, config.chainId),
    )
    const destroyProviders = () => {
      for (const p of providers) p.destroy()
    }
    let keyguard: Keyguard
    const fastPath = options.fastPath ?? config.keyguard?.fastPath ?? true
    const confirmations = options.confirmations ?? confirmationsFor(config)
    try {
      let auditSigner: Wallet
      if (operatorKeyHex === undefined) {
        logger.warn('no keyguard operator account: audit records use the owner account', {
          hint: operatorWarning({}),
        })
        auditSigner = new Wallet(ownerKeyHex, providers[0])
      } else {
        auditSigner = new Wallet(operatorKeyHex, providers[0])
        const signer = auditSigner
        const op = await ownerTransactions(paths, () =>
          ensureOperator(
            providers[0] as JsonRpcProvider,
            config.contracts,
            new Wallet(ownerKeyHex, providers[0]),
            signer.address,
            { devFund: false, logger },
          ),
        )
        if (op.warning) logger.warn('keyguard operator not ready', { ...op })
      }
      const chain = ethersChainClient({
        providers,
        ...(config.quorum !== undefined ? { quorum: config.quorum } : {}),
        // A quorum still answered, but an RPC lied, lagged or failed: the operator should know.
        onDisagreement: (e) =>
          logger.warn('an RPC disagreed with the quorum', {
            operation: e.operation,
            ...(e.block === undefined ? {} : { block: e.block }),
            rpcs: e.dissent.map((d) => `${d.rpc} ${d.kind}`),
          }),
        signer: auditSigner,
        addresses: config.contracts,
        chainId: BigInt(config.chainId),
      })
      const journal = await createReleaseJournal(paths.journal)
      keyguard = createKeyguard({
        dataDir: paths.keyguard,
        confirmations,
        ...(config.startBlock !== undefined ? { startBlock: config.startBlock } : {}),
        ...(config.keyguard?.pollIntervalMs !== undefined
          ? { pollIntervalMs: config.keyguard.pollIntervalMs }
          : {}),
        fastPath: { enabled: fastPath },
      })({ sealer, keyStore, journal, chain, libp2p: node.libp2p, logger })
      // start(): checks eth_chainId, re-serves journaled (begun) releases, then watches.
      await keyguard.start()
    } catch (err) {
      await node.stop()
      destroyProviders()
      throw err
    }
    const unsubscribe = subscribeCapsuleAnnouncements(
      node,
      (ann, from) => {
        logger.info('capsule announced', { capsuleId: ann.capsuleId, cid: ann.cid, from })
        options.onAnnouncement?.(ann, from)
      },
      {
        onError: (err, from) =>
          logger.warn('malformed announcement dropped', { code: err.code, from }),
      },
    )
    const store = heliaCapsuleStore(node.helia)
    let pinned = 0
    for (const id of await keyStore.list()) {
      const cid = (await keyStore.get(id).catch(() => undefined))?.metadata.cid
      if (cid && (await store.has(cid).catch(() => false))) {
        await store.pin(cid).then(
          () => pinned++,
          (err) => logger.warn('cannot pin capsule', { capsuleId: id, code: errorInfo(err).code }),
        )
      }
    }
    const startedAt = new Date().toISOString()
    let stopped = false
    let writing: Promise<void> = Promise.resolve()
    const writeServeFile = (): Promise<void> => {
      writing = writing.then(async () => {
        if (stopped) return
        const kg = await keyguard.status().catch(() => undefined)
        if (stopped) return
        await writeJsonAtomic(paths.serve, {
          pid: process.pid,
          peerId: node.peerId,
          multiaddrs: node.multiaddrs(),
          startedAt,
          updatedAt: new Date().toISOString(),
          ...(kg ? { keyguard: kg } : {}),
        } satisfies ServeFile).catch((err) =>
          logger.warn('cannot write serve.json', { code: errorInfo(err).code }),
        )
      })
      return writing
    }
    let refresh: NodeJS.Timeout | undefined
    const onEvent = (e: Event) => {
      const detail = (e as CustomEvent<KeyguardEvent>).detail
      const { type, ...fields } = detail as KeyguardEvent & Record<string, unknown>
      const warn = type === 'release-failed' || type === 'audit-alert' || type === 'reorg'
      logger[warn ? 'warn' : 'info'](`keyguard ${type}`, fields)
      options.onKeyguardEvent?.(detail)
      refresh ??= setTimeout(() => {
        refresh = undefined
        void writeServeFile()
      }, 100)
    }
    for (const type of KEYGUARD_EVENTS) keyguard.events.addEventListener(type, onEvent)
    await writeServeFile()
    const timer = setInterval(() => void writeServeFile(), options.statusIntervalMs ?? 5000)
    timer.unref()
    let stopping: Promise<void> | undefined
    return {
      node,
      keyguard,
      peerId: node.peerId,
      multiaddrs: () => node.multiaddrs(),
      pinned,
      stop() {
        stopping ??= (async () => {
          stopped = true
          clearInterval(timer)
          if (refresh) clearTimeout(refresh)
          for (const type of KEYGUARD_EVENTS) keyguard.events.removeEventListener(type, onEvent)
          unsubscribe()
          await keyguard.stop()
          await writing
          await node.stop()
          destroyProviders()
          await rm(paths.serve, { force: true })
        })()
        return stopping
      },
    }
  }

  return { config, sealer, keyStore, seal, status, recover, serve }
}
