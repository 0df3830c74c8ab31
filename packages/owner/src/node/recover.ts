/**
 * `pi-node recover`: brings an owner back on a new Pi (or a new TPM) from the paper words,
 * the chain and a peer that serves the capsules. Nothing of the old data folder is needed:
 *
 * 1. the config and the owner file are written again (the owner, operator and libp2p identity
 *    are derived from the words; the TPM key is new);
 * 2. records still in the local key store are re-wrapped to the new TPM;
 * 3. `restoreKeyguard` of `@digicap/owner`: every capsule the chain says the owner registered
 *    is fetched by CID from the given peers, its data key taken from the header's recovery
 *    copy and wrapped to the new TPM, the chain's keyguard record pointed at the new key, and
 *    the capsule pinned again.
 *
 * Every step is idempotent: a run cut by a crash is finished by running it again.
 */
import { readFile, stat } from 'node:fs/promises'
import { ConfigError, processAlive } from '@digicap/cli-kit'
import { readOwner, restoreOwner, type SealerDescription } from '@digicap/keyguard/local'
import { createDigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { DaemonRunningError } from '../errors.ts'
import { ethersCapsuleDirectory } from '../recovery/ethers-capsule-directory.ts'
import { ethersKeyguardRecorder } from '../recovery/ethers-keyguard-recorder.ts'
import { ipfsHeaderFetcher } from '../recovery/ipfs-header-fetcher.ts'
import { type RestoreKeyguardResult, restoreKeyguard } from '../recovery/restore-keyguard.ts'
import {
  type OwnerNodeComponents,
  ownerTransactions,
  type ProgressFn,
  peerIdOfPublicKey,
  withOwnerAccount,
} from './components.ts'
import {
  loadOwnerNodeConfig,
  type OwnerNodeConfig,
  ownerNodePaths,
  type ReleaseConfig,
  type SealerConfig,
  saveOwnerNodeConfig,
} from './config.ts'
import { initOwnerNode } from './init.ts'
import { createOwnerNode } from './owner-node.ts'
import { provisionSealer } from './provision-sealer.ts'

export interface RecoverOwnerNodeOptions {
  dataDir: string
  /** The paper words. */
  mnemonic: string
  /**
   * The TPM makers' CA bundle (PEM file) the new key's TPM must chain to (ADR 0097); default:
   * the config's `keyguard.ekRoots`. Saved as that on a new Pi.
   */
  ekRoots?: string
  passphrase?: string
  /** The new sealer (new TPM). Default: the config's. Required on a new Pi. */
  sealer?: SealerConfig
  /** On a new Pi (no config): the chain and the contracts. */
  rpcUrl?: string
  chainId?: number
  contracts?: OwnerNodeConfig['contracts']
  /**
   * Multiaddrs (with `/p2p/<peerId>`) of peers that serve the capsules' blocks (an executor,
   * a pinning peer, another node of the owner). Saved as `bootstrap` in the config.
   */
  peers?: string[]
  /** First block to scan for the owner's registrations. Default: the config's, or 0. */
  startBlock?: number
  /** Listen addresses saved in a new config (see `init`). */
  listen?: string[]
  /**
   * On a new Pi: the release `verify-install` checks, saved in the new config; with a sealer
   * bound to the release PCR, its manifest's measurement is what the new key's first approval
   * takes for that PCR (as `init`).
   */
  release?: ReleaseConfig
  /** Per-capsule timeout for fetching a header and pinning. Default 60 000 ms. */
  fetchTimeoutMs?: number
  onProgress?: ProgressFn
}

export interface RecoverOwnerNodeResult {
  owner: string
  peerId: string
  sealer: SealerDescription
  /** Whether the config was written anew (a new Pi). */
  newConfig: boolean
  /** Capsule keys now wrapped to the new sealer (from the local store or rebuilt from IPFS). */
  recovered: string[]
  /** Capsules not recovered, with a typed reason (`blocks-not-found`, …) or a local error code. */
  failed: { capsuleId: string; code: string; reason?: string; cid?: string }[]
  /** What the chain-side rebuild did. */
  chain: RestoreKeyguardResult['chain']
  /** Capsules whose blocks could not be pinned here (the key is recovered; serving is not). */
  notPinned: RestoreKeyguardResult['notPinned']
}

/** The config to recover into: the folder's (updated), or a new one written by `init`. */
async function recoveryConfig(
  options: RecoverOwnerNodeOptions,
  components: OwnerNodeComponents,
): Promise<{ config: OwnerNodeConfig; newConfig: boolean }> {
  const paths = ownerNodePaths(options.dataDir)
  if (
    await stat(paths.config).then(
      () => true,
      () => false,
    )
  ) {
    const onDisk = await loadOwnerNodeConfig(options.dataDir)
    const config: OwnerNodeConfig = {
      ...onDisk,
      ...(options.sealer ? { sealer: options.sealer } : {}),
      bootstrap: [...new Set([...onDisk.bootstrap, ...(options.peers ?? [])])],
      ...(onDisk.startBlock === undefined && options.startBlock !== undefined
        ? { startBlock: options.startBlock }
        : {}),
    }
    await saveOwnerNodeConfig(config)
    return { config, newConfig: false }
  }
  if (!options.rpcUrl || !options.contracts || !options.sealer) {
    throw new ConfigError('This data folder has no config: a new Pi needs the chain', {
      details: { dataDir: options.dataDir },
      hint: 'Pass --rpc-url, --capsule-registry, --node-registry, --access-controller and the new TPM (--tcti).',
    })
  }
  // Same words → same owner, operator and libp2p identity; a new TPM key. `force`: an owner
  // file left by an earlier, interrupted recovery is moved aside and written again.
  const init = await initOwnerNode(
    {
      dataDir: options.dataDir,
      rpcUrl: options.rpcUrl,
      ...(options.chainId !== undefined ? { chainId: options.chainId } : {}),
      sealer: options.sealer,
      contracts: options.contracts,
      bootstrap: options.peers ?? [],
      ...(options.listen ? { listen: options.listen } : {}),
      ...(options.startBlock !== undefined ? { startBlock: options.startBlock } : {}),
      ...(options.release !== undefined ? { release: options.release } : {}),
      ...(options.ekRoots !== undefined ? { keyguard: { ekRoots: options.ekRoots } } : {}),
      mnemonic: options.mnemonic,
      force: true,
    },
    components,
  )
  return { config: init.config, newConfig: true }
}

/**
 * Recovers the owner's node from the words: see the module comment.
 *
 * @throws {ConfigError} on a new Pi without `rpcUrl`, `contracts` or `sealer`.
 * @throws {InvalidMnemonicError} | {RecoveryKeyMismatchError} (words of another owner) |
 *   {ChainUnreachableError} | the sealer's errors. A capsule that cannot be recovered does
 *   not throw: it is in `failed`.
 */
export async function recoverOwnerNode(
  options: RecoverOwnerNodeOptions,
  components: OwnerNodeComponents = {},
): Promise<RecoverOwnerNodeResult> {
  const paths = ownerNodePaths(options.dataDir)
  const progress = options.onProgress ?? (() => {})
  const serve = await readFile(paths.serve, 'utf8').then(
    (t) => JSON.parse(t) as { pid?: number },
    () => undefined,
  )
  if (serve?.pid !== undefined && serve.pid !== process.pid && processAlive(serve.pid)) {
    throw new DaemonRunningError('pi-node serve is running on this data folder', {
      details: { pid: serve.pid },
      hint: 'Stop it first, recover, then start it again.',
    })
  }
  const { config, newConfig } = await recoveryConfig(options, components)
  // The owner file must open with the new sealer before anything else can run. As init: a
  // PCR-bound config gets a key bound to the words' authorizing key and this boot approved,
  // not an unbound key (a new TPM) nor an `unfit-key` refusal (the same TPM) (ADR 0089).
  const sealer = await provisionSealer(config.sealer, {
    dataDir: config.dataDir,
    mnemonic: options.mnemonic,
    ...(components.logger ? { logger: components.logger } : {}),
    release: config.release,
    ekRoots: options.ekRoots ?? config.keyguard?.ekRoots,
  })
  const words = {
    mnemonic: options.mnemonic,
    ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
  }
  if (!(await readOwner(paths.owner).catch(() => undefined))) {
    await restoreOwner({ path: paths.owner, sealer, ...words })
  }
  const pi = await createOwnerNode(config, components)
  // Local records (the folder survived, the TPM did not): re-wrapped, owner file rewritten.
  const local = await pi.recover({
    ...words,
    onProgress: (_p, done, total) => progress('rewrap', done, total),
  })
  const owner = await readOwner(paths.owner)
  const peerId = peerIdOfPublicKey((owner as NonNullable<typeof owner>).libp2pPublicKey)
  const node = await createDigicapNode({ dataDir: paths.ipfs, listen: [] })
  try {
    for (const peer of config.bootstrap) {
      await node.libp2p
        .dial(multiaddr(peer), { signal: AbortSignal.timeout(10_000) })
        .catch((err) =>
          components.logger?.warn('cannot dial peer', { peer, error: (err as Error).message }),
        )
    }
    const store = heliaCapsuleStore(node.helia)
    const restored = await withOwnerAccount(paths, sealer, config, ({ wallet, provider }) =>
      restoreKeyguard(
        {
          ...words,
          peerId,
          ...(options.fetchTimeoutMs !== undefined
            ? { fetchTimeoutMs: options.fetchTimeoutMs }
            : {}),
          metadata: { chainId: String(config.chainId), registry: config.contracts.capsuleRegistry },
          onProgress: progress,
        },
        {
          sealer,
          keyStore: pi.keyStore,
          directory: ethersCapsuleDirectory(provider, config.contracts, {
            fromBlock: options.startBlock ?? config.startBlock ?? 0,
          }),
          fetcher: ipfsHeaderFetcher(store),
          recorder: ethersKeyguardRecorder(wallet, {
            contracts: config.contracts,
            serialize: (fn) => ownerTransactions(paths, fn),
          }),
          store,
        },
      ),
    )
    const { chain } = restored
    const rebuilt = [...chain.recovered, ...chain.present]
    return {
      owner: local.owner,
      peerId,
      sealer: local.sealer,
      newConfig,
      recovered: [...new Set([...local.recovered, ...rebuilt])],
      failed: [
        ...local.failed.filter((f) => !rebuilt.includes(f.capsuleId)),
        ...chain.failed.map(({ capsuleId, code, reason, cid }) => ({
          capsuleId,
          code,
          reason,
          cid,
        })),
      ],
      chain,
      notPinned: restored.notPinned,
    }
  } finally {
    await node.stop()
  }
}
