/**
 * The composition root: builds the sealer, key store, chain client and p2p node from a
 * config and runs the owner's operations. No protocol logic here: every step is a call into
 * a package (`@digicap/owner` for the pipeline, `keyguard`, `contracts`, `p2p`).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateCapsuleId, type Receiver, type RuntimeKind } from '@digicap/capsule-core'
import { createProvider, parsePolicyExpression } from '@digicap/contracts'
import {
  createKeyStore,
  type KeyguardStatus,
  type KeyStore,
  type Logger,
  readOwner,
  recoverKeys,
  type Sealer,
  type SealerDescription,
} from '@digicap/keyguard'
import {
  type Announcer,
  checkSealInput,
  ethersCapsuleRegistrar,
  gossipAnnouncer,
  type KeyguardCard,
  keyguardCard,
  type OperatorStatus,
  operatorWarning,
  readKeyguardOperator,
  type SealAndPublishResult,
  sealAndPublish,
  solcPolicyDeployer,
  writeCodeBundle,
} from '@digicap/owner'
import { createDigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import {
  checkChainId,
  createSealer,
  errorInfo,
  ownerTransactions,
  type PiNodePaths,
  peerIdOfPublicKey,
  readServeFile,
  removeLeftoverTemps,
  rpc,
  silent,
  withOwnerAccount,
} from './components.ts'
import {
  loadConfig,
  type PiNodeConfig,
  piNodePaths,
  type SealerConfig,
  saveConfig,
  writeJsonAtomic,
} from './config.ts'
import { ConfigError, NotInitialisedError, RuntimeUnsupportedError } from './errors.ts'
import { type RunningPiNode, type ServeOptions, servePiNode } from './serve.ts'

export type { OperatorStatus } from '@digicap/owner'
export { createSealer, fetchChainId, ownerTransactions, peerIdOfPublicKey } from './components.ts'
export type { InitPiNodeOptions, InitPiNodeResult } from './init.ts'
export { initPiNode } from './init.ts'
export type { RunningPiNode, ServeOptions } from './serve.ts'

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

/**
 * The executor's bundle format: `code` is one file (stored under the name `entry`) or a
 * folder (every file under its relative path); `data` is the file being sealed.
 * @throws {InputFileError} if the code cannot be read; the executor's `BUNDLE_FORMAT`.
 */
export const executorBundleEncoder: BundleEncoder = async ({ entry, code, data, outputPath }) => {
  const { encodeBundle } = await import('@digicap/executor')
  await writeCodeBundle({ entry, code, data, output: outputPath }, encodeBundle)
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
  /** What a laptop needs to seal for this keyguard (`@digicap/owner`): public facts only. */
  card?: KeyguardCard
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

export interface PiNode {
  readonly config: PiNodeConfig
  readonly sealer: Sealer
  readonly keyStore: KeyStore
  seal(options: SealOptions): Promise<SealResult>
  status(): Promise<PiNodeStatus>
  recover(options: RecoverOptions): Promise<RecoverResult>
  serve(options?: ServeOptions): Promise<RunningPiNode>
}

/** The flags of a code capsule, checked before anything is sent. */
function checkRuntime(options: SealOptions): RuntimeKind {
  const runtime = options.runtime ?? 'data'
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
  return runtime
}

/** Announces through a running `serve` (this short-lived node dials it first). */
function serveAnnouncer(
  paths: PiNodePaths,
  node: Parameters<typeof gossipAnnouncer>[0],
  timeoutMs: number,
  logger: Logger,
): Announcer {
  return {
    async announce(ann) {
      const serve = await readServeFile(paths.serve)
      if (!serve) return { ok: false, reason: 'serve-not-running' }
      const addr =
        serve.multiaddrs.find((m) => m.startsWith('/ip4/127.0.0.1/')) ?? serve.multiaddrs[0]
      if (!addr) return { ok: false, reason: 'serve-has-no-address' }
      const out = await gossipAnnouncer(node, { peers: [addr], timeoutMs }).announce(ann)
      if (!out.ok) logger.warn('announcement failed', { code: out.reason })
      return out
    },
  }
}

/** The capsule folder's record of what was sealed (policy source and metadata, capsule). */
async function writeCapsuleFiles(dir: string, expression: string, r: SealAndPublishResult) {
  const p = r.deployedPolicy
  if (p) {
    await writeFile(join(dir, 'policy.sol'), p.source, { mode: 0o600 })
    const { address, transactionHash, contractName, solcVersion, settings, metadata } = p
    await writeJsonAtomic(join(dir, 'policy.json'), {
      address,
      transactionHash,
      expression,
      contractName,
      solcVersion,
      settings,
      metadata,
    })
  }
  await writeJsonAtomic(join(dir, 'capsule.json'), {
    capsuleId: r.capsuleId,
    cid: r.cid,
    policy: r.policy,
    registerTransaction: r.registerTransaction,
    plaintextSize: r.plaintextSize,
    capsuleSize: r.capsuleSize,
    runtime: r.metadata.runtime,
    createdAt: new Date().toISOString(),
  })
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

  async function seal(options: SealOptions): Promise<SealResult> {
    parsePolicyExpression(options.policy)
    await checkChainId(config.rpcUrl, config.chainId)
    await checkSealInput(options.file)
    const runtime = checkRuntime(options)
    const capsuleIdBytes = generateCapsuleId()
    const dir = join(paths.capsules, `0x${Buffer.from(capsuleIdBytes).toString('hex')}`)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    let input = options.file
    if (runtime !== 'data') {
      input = join(dir, 'bundle.partial')
      const encode = components.encodeBundle ?? executorBundleEncoder
      const { entry, code } = options as Required<SealOptions>
      await encode({ entry, code, data: options.file, outputPath: input }).catch(async (err) => {
        await rm(dir, { recursive: true, force: true })
        throw err
      })
    }
    const capsulePath = join(dir, 'capsule.bin')
    const serialize = <T>(fn: () => Promise<T>) => ownerTransactions(paths, fn)
    // Blocks go to the on-disk blockstore that `serve` provides; announce through it.
    const node = await createDigicapNode({ dataDir: paths.ipfs, datastore: 'memory', listen: [] })
    try {
      const r = await withOwnerAccount(paths, sealer, config, ({ wallet, signer }) =>
        sealAndPublish(
          {
            input,
            output: capsulePath,
            policy: options.policy,
            chainId: config.chainId,
            registry: config.contracts.capsuleRegistry,
            keyguardPeerId: ownerPeerId,
            recoveryPublicKey: owner!.recoveryPublicKey,
            runtime: {
              kind: runtime,
              ...(options.entry !== undefined ? { entry: options.entry } : {}),
              ...(options.memoryLimit !== undefined ? { memoryLimit: options.memoryLimit } : {}),
              ...(options.timeLimit !== undefined ? { timeLimit: options.timeLimit } : {}),
            },
            receivers: options.receivers ?? [],
            capsuleId: capsuleIdBytes,
            ...(options.onProgress ? { onProgress: options.onProgress } : {}),
          },
          {
            signer,
            wrapper: sealer,
            policies: solcPolicyDeployer(wallet, {
              nodeRegistry: config.contracts.nodeRegistry,
              serialize,
            }),
            registrar: ethersCapsuleRegistrar(wallet, { contracts: config.contracts, serialize }),
            store: heliaCapsuleStore(node.helia),
            announcer: serveAnnouncer(paths, node, options.announceTimeoutMs ?? 5000, logger),
            keyRecords: keyStore,
          },
        ),
      )
      await writeCapsuleFiles(dir, options.policy, r)
      return {
        capsuleId: r.capsuleId,
        cid: r.cid,
        policy: r.policy,
        policyTransaction: r.deployedPolicy?.transactionHash ?? '',
        registerTransaction: r.registerTransaction,
        capsulePath,
        capsuleSize: r.capsuleSize,
        plaintextSize: r.plaintextSize,
        announced: r.announced,
      }
    } finally {
      await node.stop()
      if (input !== options.file) await rm(input, { force: true })
    }
  }

  async function chainStatus(): Promise<Pick<PiNodeStatus, 'chain' | 'operator'>> {
    const o = owner as NonNullable<typeof owner>
    let operator: OperatorStatus =
      o.operatorAddress === undefined
        ? { warning: operatorWarning({}) as string }
        : { address: o.operatorAddress }
    try {
      await checkChainId(config.rpcUrl, config.chainId)
      const head = Number(BigInt((await rpc(config.rpcUrl, 'eth_blockNumber', [])) as string))
      const balance = BigInt(
        (await rpc(config.rpcUrl, 'eth_getBalance', [o.address, 'latest'])) as string,
      )
      const address = o.operatorAddress
      if (address !== undefined) {
        const provider = createProvider(config.rpcUrl, config.chainId)
        operator = await readKeyguardOperator(provider, config.contracts, o.address, address)
          .catch((err) => ({
            address,
            warning: `Cannot read the keyguard operator (error[${errorInfo(err).code}])`,
          }))
          .finally(() => provider.destroy())
      }
      return { chain: { reachable: true, head, ownerBalanceWei: balance.toString() }, operator }
    } catch (err) {
      return { chain: { reachable: false, error: errorInfo(err) }, operator }
    }
  }

  async function status(): Promise<PiNodeStatus> {
    const sealerInfo = await sealer.describe().catch((err) => ({ error: errorInfo(err) }))
    const card = await keyguardCard({
      peerId: ownerPeerId,
      wrapper: sealer,
      recoveryPublicKey: owner!.recoveryPublicKey,
    }).catch(() => undefined)
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
      ...(card ? { card } : {}),
      ...(await chainStatus()),
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
    const newSealer = createSealer(options.sealer ?? config.sealer, {
      createIfMissing: true,
      logger,
    })
    const result = await recoverKeys({
      mnemonic: options.mnemonic,
      ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
      store: keyStore,
      newSealer,
      ownerPath: paths.owner,
      onProgress: (done: number, total: number) => options.onProgress?.('recover', done, total),
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

  const serve = (options?: ServeOptions) =>
    servePiNode({ config, paths, sealer, keyStore, owner: owner!, logger }, options)

  return { config, sealer, keyStore, seal, status, recover, serve }
}
