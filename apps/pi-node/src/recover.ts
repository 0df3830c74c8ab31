/**
 * `pi-node recover`: brings an owner back on a new Pi (or a new TPM) from the paper words,
 * the chain and a peer that serves the capsules. Nothing of the old data folder is needed:
 *
 * 1. the config and the owner file are written again (the owner, operator and libp2p identity
 *    are derived from the words; the TPM key is new);
 * 2. records still in the local key store are re-wrapped to the new TPM;
 * 3. every capsule the chain says the owner registered (`CapsuleRegistered` logs, indexed by
 *    owner) is fetched by CID from the given peers, its data key is taken from the header's
 *    recovery copy and wrapped to the new TPM; the chain's keyguard record
 *    (`updateKeyguard`) is pointed at the new key; the capsule is pinned again.
 *
 * Every step is idempotent: a run cut by a crash is finished by running it again.
 */
import { readFile, stat } from 'node:fs/promises'
import {
  CAPSULE_PREAMBLE_LENGTH,
  CAPSULE_SIGNATURE_LENGTH,
  CapsuleTruncatedError,
  MAX_HEADER_LENGTH,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
} from '@digicap/capsule-core'
import { processAlive } from '@digicap/cli-kit'
import { connectDigicap, createProvider, parseEvents } from '@digicap/contracts'
import {
  type CapsuleDirectory,
  type HeaderFetcher,
  type KeyguardRecorder,
  type OwnedCapsule,
  type RebuildKeyStoreResult,
  readOwner,
  rebuildKeyStore,
  restoreOwner,
  type SealerDescription,
  unwrapOwnerSecrets,
} from '@digicap/keyguard'
import { type CapsuleStore, createDigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { getBytes, hexlify, type JsonRpcProvider, toUtf8String, Wallet, zeroPadValue } from 'ethers'
import {
  loadConfig,
  type PiNodeConfig,
  piNodePaths,
  type SealerConfig,
  saveConfig,
} from './config.ts'
import { ConfigError, DaemonRunningError } from './errors.ts'
import {
  createPiNode,
  createSealer,
  initPiNode,
  ownerTransactions,
  type PiNodeComponents,
  type ProgressFn,
  peerIdOfPublicKey,
} from './pi-node.ts'

/** Blocks scanned per `eth_getLogs` call (public RPCs cap the range). */
const LOG_BATCH_BLOCKS = 10_000

/**
 * The owner's capsules from the chain: `CapsuleRegistered` logs filtered by the indexed owner,
 * each read again with `getCapsule` for its current CID, key id and revocation.
 */
export function chainCapsuleDirectory(
  provider: JsonRpcProvider,
  contracts: PiNodeConfig['contracts'],
  options: { fromBlock: number },
): CapsuleDirectory {
  const { capsuleRegistry } = connectDigicap(contracts, provider)
  const topic = capsuleRegistry.interface.getEvent('CapsuleRegistered')?.topicHash as string
  return {
    async ownedCapsules(owner) {
      const head = await provider.getBlockNumber()
      const ids: string[] = []
      for (let from = options.fromBlock; from <= head; from += LOG_BATCH_BLOCKS) {
        const logs = await provider.getLogs({
          address: contracts.capsuleRegistry,
          topics: [topic, null, zeroPadValue(owner, 32)],
          fromBlock: from,
          toBlock: Math.min(head, from + LOG_BATCH_BLOCKS - 1),
        })
        for (const e of parseEvents(capsuleRegistry, logs, 'CapsuleRegistered')) {
          const id = String(e.capsuleId).toLowerCase()
          if (!ids.includes(id)) ids.push(id)
        }
      }
      const out: OwnedCapsule[] = []
      for (const capsuleId of ids) {
        const c = await capsuleRegistry.getCapsule(capsuleId)
        // A capsule re-registered elsewhere cannot happen (ids are unique); a transfer could.
        if (String(c.owner).toLowerCase() !== owner.toLowerCase()) continue
        let peerId: string
        try {
          peerId = toUtf8String(getBytes(c.keyguardPeerId))
        } catch {
          peerId = hexlify(c.keyguardPeerId)
        }
        out.push({
          capsuleId,
          cid: c.cid,
          policy: c.policy,
          revoked: c.revoked,
          keyguardKeyId: String(c.keyguardKeyId).replace(/^0x/, '').toLowerCase(),
          keyguardPeerId: peerId,
        })
      }
      return out
    },
  }
}

/**
 * Reads a capsule's header from IPFS: only the first blocks (preamble, header, signature),
 * then the stream is closed.
 */
export function ipfsHeaderFetcher(store: CapsuleStore): HeaderFetcher {
  const most = CAPSULE_PREAMBLE_LENGTH + MAX_HEADER_LENGTH + CAPSULE_SIGNATURE_LENGTH
  return {
    async fetchHeader(cid, { signal }): Promise<ParsedCapsuleHeader> {
      let buf = new Uint8Array(0)
      for await (const chunk of store.get(cid, { signal })) {
        const next = new Uint8Array(buf.length + chunk.length)
        next.set(buf)
        next.set(chunk, buf.length)
        buf = next
        try {
          return parseCapsuleHeader(buf)
        } catch (err) {
          if (!(err instanceof CapsuleTruncatedError) || buf.length >= most) throw err
        }
      }
      return parseCapsuleHeader(buf)
    },
  }
}

/** `updateKeyguard` from the owner account, under the owner-transaction lock. */
export function ownerKeyguardRecorder(
  wallet: Wallet,
  contracts: PiNodeConfig['contracts'],
  paths: ReturnType<typeof piNodePaths>,
): KeyguardRecorder {
  const { capsuleRegistry } = connectDigicap(contracts, wallet)
  return {
    async updateKeyguard(capsuleId, peerId, keyId) {
      await ownerTransactions(paths, async () => {
        const tx = await capsuleRegistry.updateKeyguard(
          capsuleId,
          new TextEncoder().encode(peerId),
          `0x${keyId}`,
        )
        await tx.wait()
      })
    },
  }
}

export interface RecoverPiNodeOptions {
  dataDir: string
  /** The paper words. */
  mnemonic: string
  passphrase?: string
  /** The new sealer (new TPM). Default: the config's. Required on a new Pi. */
  sealer?: SealerConfig
  /** On a new Pi (no config): the chain and the contracts. */
  rpcUrl?: string
  chainId?: number
  contracts?: PiNodeConfig['contracts']
  /**
   * Multiaddrs (with `/p2p/<peerId>`) of peers that serve the capsules' blocks (an executor,
   * a pinning peer, another node of the owner). Saved as `bootstrap` in the config.
   */
  peers?: string[]
  /** First block to scan for the owner's registrations. Default: the config's, or 0. */
  startBlock?: number
  /** Listen addresses saved in a new config (see `init`). */
  listen?: string[]
  /** Per-capsule timeout for fetching a header and pinning. Default 60 000 ms. */
  fetchTimeoutMs?: number
  onProgress?: ProgressFn
}

export interface RecoverPiNodeResult {
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
  chain: RebuildKeyStoreResult
  /** Capsules whose blocks could not be pinned here (the key is recovered; serving is not). */
  notPinned: { capsuleId: string; code: string }[]
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/**
 * Recovers the owner's node from the words: see the module comment.
 *
 * @throws {ConfigError} on a new Pi without `rpcUrl`, `contracts` or `sealer`.
 * @throws {InvalidMnemonicError} | {RecoveryKeyMismatchError} (words of another owner) |
 *   {ChainUnreachableError} | the sealer's errors. A capsule that cannot be recovered does
 *   not throw: it is in `failed`.
 */
export async function recoverPiNode(
  options: RecoverPiNodeOptions,
  components: PiNodeComponents = {},
): Promise<RecoverPiNodeResult> {
  const paths = piNodePaths(options.dataDir)
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
  let config: PiNodeConfig
  let newConfig = false
  if (await exists(paths.config)) {
    const onDisk = await loadConfig(options.dataDir)
    const bootstrap = [...new Set([...onDisk.bootstrap, ...(options.peers ?? [])])]
    config = {
      ...onDisk,
      ...(options.sealer ? { sealer: options.sealer } : {}),
      bootstrap,
      ...(onDisk.startBlock === undefined && options.startBlock !== undefined
        ? { startBlock: options.startBlock }
        : {}),
    }
    await saveConfig(config)
  } else {
    if (!options.rpcUrl || !options.contracts || !options.sealer) {
      throw new ConfigError('This data folder has no config: a new Pi needs the chain', {
        details: { dataDir: options.dataDir },
        hint: 'Pass --rpc-url, --capsule-registry, --node-registry, --access-controller and the new TPM (--tcti).',
      })
    }
    // Same words → same owner, operator and libp2p identity; a new TPM key. `force`: an owner
    // file left by an earlier, interrupted recovery is moved aside and written again.
    const init = await initPiNode(
      {
        dataDir: options.dataDir,
        rpcUrl: options.rpcUrl,
        ...(options.chainId !== undefined ? { chainId: options.chainId } : {}),
        sealer: options.sealer,
        contracts: options.contracts,
        bootstrap: options.peers ?? [],
        ...(options.listen ? { listen: options.listen } : {}),
        ...(options.startBlock !== undefined ? { startBlock: options.startBlock } : {}),
        mnemonic: options.mnemonic,
        force: true,
      },
      components,
    )
    config = init.config
    newConfig = true
  }

  // The owner file must open with the new sealer before anything else can run.
  const sealer = createSealer(config.sealer, {
    createIfMissing: true,
    ...(components.logger ? { logger: components.logger } : {}),
  })
  if (!(await readOwner(paths.owner).catch(() => undefined))) {
    await restoreOwner({
      path: paths.owner,
      sealer,
      mnemonic: options.mnemonic,
      ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
    })
  }
  const pi = await createPiNode(config, components)
  // Local records (the folder survived, the TPM did not): re-wrapped, owner file rewritten.
  const local = await pi.recover({
    mnemonic: options.mnemonic,
    ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
    onProgress: (_p, done, total) => progress('rewrap', done, total),
  })
  const owner = await readOwner(paths.owner)
  const peerId = peerIdOfPublicKey((owner as NonNullable<typeof owner>).libp2pPublicKey)

  const provider = createProvider(config.rpcUrl, config.chainId)
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
    const secrets = await unwrapOwnerSecrets(paths.owner, sealer)
    secrets.libp2pSeed.fill(0)
    secrets.operatorPrivateKey?.fill(0)
    const wallet = new Wallet(hexlify(secrets.ethereumPrivateKey), provider)
    secrets.ethereumPrivateKey.fill(0)
    const fetchTimeoutMs = options.fetchTimeoutMs ?? 60_000
    const chain = await rebuildKeyStore({
      mnemonic: options.mnemonic,
      ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
      store: pi.keyStore,
      sealer,
      peerId,
      directory: chainCapsuleDirectory(provider, config.contracts, {
        fromBlock: options.startBlock ?? config.startBlock ?? 0,
      }),
      fetcher: ipfsHeaderFetcher(store),
      recorder: ownerKeyguardRecorder(wallet, config.contracts, paths),
      fetchTimeoutMs,
      metadata: { chainId: String(config.chainId), registry: config.contracts.capsuleRegistry },
      onProgress: (done, total) => progress('rebuild', done, total),
    })
    // Serve the blocks again: pin what was recovered (fetching the rest from the peers).
    const notPinned: RecoverPiNodeResult['notPinned'] = []
    const toPin = [...chain.recovered, ...chain.present]
    let pinned = 0
    for (const capsuleId of toPin) {
      const cid = (await pi.keyStore.get(capsuleId))?.metadata.cid
      if (cid) {
        await store.pin(cid, { signal: AbortSignal.timeout(fetchTimeoutMs) }).catch((err) => {
          notPinned.push({ capsuleId, code: (err as { code?: string }).code ?? 'UNKNOWN' })
        })
      }
      progress('pin', ++pinned, toPin.length)
    }
    const recovered = [...new Set([...local.recovered, ...chain.recovered, ...chain.present])]
    const failed: RecoverPiNodeResult['failed'] = [
      ...local.failed.filter(
        (f) => !chain.recovered.includes(f.capsuleId) && !chain.present.includes(f.capsuleId),
      ),
      ...chain.failed.map((f) => ({
        capsuleId: f.capsuleId,
        code: f.code,
        reason: f.reason,
        cid: f.cid,
      })),
    ]
    return {
      owner: local.owner,
      peerId,
      sealer: local.sealer,
      newConfig,
      recovered,
      failed,
      chain,
      notPinned,
    }
  } finally {
    await node.stop()
    provider.destroy()
  }
}
