/**
 * `pi-node serve`: helia + the keyguard (grant watcher, key releaser, fast path) on one
 * libp2p node, announcements heard (and capsules sealed elsewhere for this keyguard adopted),
 * the key store's capsules pinned, and `serve.json` kept current for `status`.
 */

import { rm } from 'node:fs/promises'
import { toHex } from '@digicap/capsule-core'
import { createProvider } from '@digicap/contracts'
import {
  type ConnectionGuard,
  createConnectionGuard,
  createKeyguard,
  createReleaseJournal,
  ethersChainClient,
  type Keyguard,
  type KeyguardEvent,
  type Logger,
  readEkRoots,
  unwrapOwnerSecrets,
} from '@digicap/keyguard'
import {
  type CapsuleAnnouncement,
  createDigicapNode,
  type DigicapNode,
  heliaCapsuleStore,
  privateKeyFromSeed,
  subscribeCapsuleAnnouncements,
} from '@digicap/p2p'
import { type JsonRpcProvider, Wallet } from 'ethers'
import { adoptionQueue } from '../adopt/adoption-queue.ts'
import { DaemonRunningError } from '../errors.ts'
import { ensureKeyguardOperator, operatorWarning } from '../operator/keyguard-operator.ts'
import { ethersCapsuleDirectory } from '../recovery/ethers-capsule-directory.ts'
import { ipfsHeaderFetcher } from '../recovery/ipfs-header-fetcher.ts'
import { pinCapsules } from '../store/pin-capsules.ts'
import {
  type OwnerNodeParts,
  type OwnerNodePaths,
  ownerTransactions,
  readServeFile,
  type ServeFile,
  writeJsonAtomicQuiet,
} from './components.ts'
import { confirmationsFor, finalityFor } from './config.ts'

export interface KeyguardNodeOptions {
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
  /**
   * Seal data files for `pi-node seal` on `<data-dir>/seal.sock` (ADR 0107). Default true; a
   * socket that cannot be made is a warning, and `pi-node seal` then seals in its own process.
   */
  sealSocket?: boolean
}

export interface RunningKeyguardNode {
  readonly node: DigicapNode
  readonly keyguard: Keyguard
  readonly peerId: string
  multiaddrs(): string[]
  /** Pinned capsules (from the key store) at start. */
  readonly pinned: number
  /** The seal socket's path, when `pi-node seal` can hand its seals over. */
  readonly sealSocket: string | undefined
  /** Stops the seal socket, the keyguard, then the node, and removes `serve.json`. Idempotent. */
  stop(): Promise<void>
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
  'fast-path-halted',
  'finality-lag',
  'audit-shortfall',
  'executors-synced',
] as const

/**
 * The keyguard operator's key signs the fast path's on-chain audit records, so the daemon
 * keeps it (inside an ethers Wallet) for its lifetime. The owner's key is used only at start,
 * to approve the operator if it is not yet. Byte copies are zeroed.
 */
async function daemonKeys(parts: OwnerNodeParts, provider: JsonRpcProvider) {
  const secrets = await unwrapOwnerSecrets(parts.paths.owner, parts.sealer)
  try {
    const owner = new Wallet(toHex(secrets.ethereumPrivateKey), provider)
    const privateKey = await privateKeyFromSeed(secrets.libp2pSeed)
    if (secrets.operatorPrivateKey === undefined) {
      parts.logger.warn('no keyguard operator account: audit records use the owner account', {
        hint: operatorWarning({}),
      })
      return { privateKey, owner, auditSigner: owner }
    }
    return {
      privateKey,
      owner,
      auditSigner: new Wallet(toHex(secrets.operatorPrivateKey), provider),
    }
  } finally {
    secrets.libp2pSeed.fill(0)
    secrets.ethereumPrivateKey.fill(0)
    secrets.operatorPrivateKey?.fill(0)
  }
}

async function startKeyguard(
  parts: OwnerNodeParts,
  options: KeyguardNodeOptions,
  node: DigicapNode,
  providers: JsonRpcProvider[],
  keys: Awaited<ReturnType<typeof daemonKeys>>,
  guard: ConnectionGuard,
): Promise<Keyguard> {
  const { config, paths, logger } = parts
  const hub = config.committee
  if (keys.auditSigner !== keys.owner) {
    const op = await ensureKeyguardOperator(
      providers[0] as JsonRpcProvider,
      config.contracts,
      keys.owner,
      keys.auditSigner.address,
      { logger, serialize: (fn) => ownerTransactions(paths, fn) },
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
    signer: keys.auditSigner,
    addresses: {
      ...config.contracts,
      ...(hub === undefined ? {} : { attestationHub: hub.attestationHub }),
    },
    chainId: BigInt(config.chainId),
  })
  const keyguard = createKeyguard({
    dataDir: paths.keyguard,
    confirmations: options.confirmations ?? confirmationsFor(config),
    finality: finalityFor(config),
    // Key records stored before they named their owner are this owner's (keyguard ADR 0071).
    owners: [parts.owner.address],
    ...(config.startBlock !== undefined ? { startBlock: config.startBlock } : {}),
    ...(config.keyguard?.pollIntervalMs !== undefined
      ? { pollIntervalMs: config.keyguard.pollIntervalMs }
      : {}),
    fastPath: { enabled: options.fastPath ?? config.keyguard?.fastPath ?? true },
    // Executors' EKs must be certified by these TPM makers (ADR 0069); else self-declared.
    ...(config.keyguard?.ekRoots === undefined
      ? {}
      : { attestation: { ekRoots: await readEkRoots(config.keyguard.ekRoots) } }),
    // The chain path waits for the committee's before verdict on chain (ADR 0033).
    ...(hub === undefined
      ? {}
      : {
          committee: hub.verdictPollMs === undefined ? {} : { verdictPollMs: hub.verdictPollMs },
        }),
  })({
    sealer: parts.sealer,
    keyStore: parts.keyStore,
    journal: await createReleaseJournal(paths.journal),
    chain,
    libp2p: node.libp2p,
    guard,
    logger,
  })
  // start(): checks eth_chainId, re-serves journaled (begun) releases, then watches.
  await keyguard.start()
  return keyguard
}

/** Rewrites `serve.json` (serialized; coalesced after keyguard events). */
function serveFileWriter(
  paths: OwnerNodePaths,
  node: DigicapNode,
  keyguard: Keyguard,
  logger: Logger,
) {
  const startedAt = new Date().toISOString()
  let stopped = false
  let writing: Promise<void> = Promise.resolve()
  let refresh: NodeJS.Timeout | undefined
  const write = (): Promise<void> => {
    writing = writing.then(async () => {
      if (stopped) return
      const kg = await keyguard.status().catch(() => undefined)
      if (stopped) return
      const file: ServeFile = {
        pid: process.pid,
        peerId: node.peerId,
        multiaddrs: node.multiaddrs(),
        startedAt,
        updatedAt: new Date().toISOString(),
        ...(kg ? { keyguard: kg } : {}),
      }
      await writeJsonAtomicQuiet(paths.serve, file, logger)
    })
    return writing
  }
  return {
    write,
    soon() {
      refresh ??= setTimeout(() => {
        refresh = undefined
        void write()
      }, 100)
    },
    async stop() {
      stopped = true
      if (refresh) clearTimeout(refresh)
      await writing
    },
  }
}

/**
 * Starts the daemon. @throws {DaemonRunningError} if another `serve` runs on this folder;
 * the keyguard's start errors (wrong chain, sealer).
 */
export async function startKeyguardNode(
  parts: OwnerNodeParts,
  options: KeyguardNodeOptions = {},
): Promise<RunningKeyguardNode> {
  const { config, paths, logger } = parts
  const running = await readServeFile(paths.serve)
  if (running && running.pid !== process.pid) {
    throw new DaemonRunningError('pi-node serve is already running', {
      details: { pid: running.pid },
      hint: 'Stop it first (systemctl stop pi-node, or kill the pid).',
    })
  }
  const providers = [config.rpcUrl, ...(config.rpcUrls ?? [])].map((url) =>
    createProvider(url, config.chainId),
  )
  const destroyProviders = () => {
    for (const p of providers) p.destroy()
  }
  let node: DigicapNode | undefined
  let keyguard: Keyguard
  try {
    const keys = await daemonKeys(parts, providers[0] as JsonRpcProvider)
    // The fast path cuts strangers that flood it; the node's gater refuses them for the cooldown.
    const guard = createConnectionGuard()()
    node = await createDigicapNode({
      connectionGater: guard.gater,
      privateKey: keys.privateKey,
      dataDir: paths.ipfs,
      listen: config.listen,
      ...(config.announce?.length ? { announce: config.announce } : {}),
      bootstrap: config.bootstrap,
    })
    keyguard = await startKeyguard(parts, options, node, providers, keys, guard)
  } catch (err) {
    await node?.stop()
    destroyProviders()
    throw err
  }
  const started = node
  const adopter = adoptionQueue(
    {
      owner: parts.owner.address,
      peerId: started.peerId,
      chainId: config.chainId,
      metadata: { chainId: String(config.chainId), registry: config.contracts.capsuleRegistry },
    },
    {
      sealer: parts.sealer,
      keyStore: parts.keyStore,
      directory: ethersCapsuleDirectory(providers[0] as JsonRpcProvider, config.contracts, {
        fromBlock: config.startBlock ?? 0,
      }),
      fetcher: ipfsHeaderFetcher(heliaCapsuleStore(started.helia)),
    },
    logger,
  )
  const unsubscribe = subscribeCapsuleAnnouncements(
    started,
    (ann, from) => {
      logger.info('capsule announced', { capsuleId: ann.capsuleId, cid: ann.cid, from })
      if (adopter.wants(ann)) void adopter.run()
      options.onAnnouncement?.(ann, from)
    },
    {
      onError: (err, from) =>
        logger.warn('malformed announcement dropped', { code: err.code, from }),
    },
  )
  void adopter.run()
  const pins = await pinCapsules(parts.keyStore, heliaCapsuleStore(started.helia), {
    onlyLocal: true,
  })
  for (const f of pins.failed) logger.warn('cannot pin capsule', { ...f })
  const serveFile = serveFileWriter(paths, started, keyguard, logger)
  const onEvent = (e: Event) => {
    const detail = (e as CustomEvent<KeyguardEvent>).detail
    const { type, ...fields } = detail as KeyguardEvent & Record<string, unknown>
    const warn =
      type === 'release-failed' ||
      type === 'audit-alert' ||
      type === 'fast-path-halted' ||
      (detail.type === 'finality-lag' && detail.lagging) ||
      type === 'audit-shortfall' ||
      type === 'reorg'
    logger[warn ? 'warn' : 'info'](`keyguard ${type}`, fields)
    options.onKeyguardEvent?.(detail)
    serveFile.soon()
  }
  for (const type of KEYGUARD_EVENTS) keyguard.events.addEventListener(type, onEvent)
  await serveFile.write()
  const timer = setInterval(() => void serveFile.write(), options.statusIntervalMs ?? 5000)
  timer.unref()
  const sealSocket = options.sealSocket === false ? undefined : await openSealSocket(parts, started)
  let stopping: Promise<void> | undefined
  return {
    node: started,
    keyguard,
    peerId: started.peerId,
    multiaddrs: () => started.multiaddrs(),
    pinned: pins.pinned.length,
    sealSocket: sealSocket?.path,
    stop() {
      stopping ??= (async () => {
        // A seal in progress finishes (up to 10 s) before the node it announces on stops; the
        // ones waiting their turn are refused `stopping` (their CLIs seal themselves).
        await sealSocket?.close()
        clearInterval(timer)
        for (const type of KEYGUARD_EVENTS) keyguard.events.removeEventListener(type, onEvent)
        unsubscribe()
        await serveFile.stop()
        adopter.stop()
        await adopter.settled()
        await keyguard.stop()
        await started.stop()
        destroyProviders()
        await rm(paths.serve, { force: true })
      })()
      return stopping
    },
  }
}

/** How long `stop()` lets a handed seal in progress finish (the unit stops within 20 s). */
const SEAL_CLOSE_TIMEOUT_MS = 10_000

/** The seal socket on the running node; a warning and none when it cannot be made. */
async function openSealSocket(parts: OwnerNodeParts, node: DigicapNode) {
  const { logger } = parts
  const [{ serveSealSocket }, { sealOwnerNode }] = await Promise.all([
    import('./seal-socket.ts'),
    import('./seal.ts'),
  ])
  return serveSealSocket({ seal: (o) => sealOwnerNode(parts, o) }, node, {
    dataDir: parts.config.dataDir,
    // Within the unit's TimeoutStopSec (20 s), with room for the keyguard's and node's stop.
    closeTimeoutMs: SEAL_CLOSE_TIMEOUT_MS,
    onEvent: (e) =>
      e.type === 'job'
        ? logger.info('seal handed over by pi-node seal', e.about)
        : logger.warn('seal request refused', e.about),
    onTurn: (e) => logger.info(`handed seal ${e.type}`, { pid: e.pid, ok: e.ok }),
  }).catch((err: { code?: string; details?: { reason?: string }; message?: string }) => {
    const reason = err?.details?.reason ?? err?.code ?? String(err?.message ?? err)
    logger.warn('seal socket unavailable: pi-node seal seals in its own process', { reason })
    return undefined
  })
}
