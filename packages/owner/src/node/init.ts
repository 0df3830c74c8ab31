/** `pi-node init`: the sealer key, the owner, the config, and (on a dev chain) the contracts. */

import { rename, stat } from 'node:fs/promises'
import { toHex } from '@digicap/capsule-core'
import {
  AlreadyInitialisedError,
  ChainUnreachableError,
  ConfigError,
  rpcChainId,
} from '@digicap/cli-kit'
import { createProvider, type DigicapAddresses, deployDigicap } from '@digicap/contracts'
import {
  generateMnemonic,
  initOwner,
  type SealerDescription,
  unwrapOwnerSecrets,
} from '@digicap/keyguard/local'
import { Wallet } from 'ethers'
import { ensureKeyguardOperator, type OperatorStatus } from '../operator/keyguard-operator.ts'
import {
  type createSealer,
  type OwnerNodeComponents,
  type OwnerNodePaths,
  ownerTransactions,
  peerIdOfPublicKey,
  removeLeftoverTemps,
  silent,
} from './components.ts'
import {
  DEFAULT_LISTEN,
  type OwnerNodeConfig,
  ownerNodePaths,
  type ReleaseConfig,
  type SealerConfig,
  saveOwnerNodeConfig,
} from './config.ts'
import { prepareDataDir } from './data-dir.ts'
import { provisionSealer } from './provision-sealer.ts'

/** 1000 ETH, what `init --deploy` gives the owner and the operator on a dev chain. */
const DEV_FUNDS = '0x3635c9adc5dea00000'

export interface InitOwnerNodeOptions {
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
  contracts?: OwnerNodeConfig['contracts']
  listen?: string[]
  /** Public multiaddrs `serve` advertises (see {@link OwnerNodeConfig.announce}). */
  announce?: string[]
  bootstrap?: string[]
  /** More RPC URLs of the same chain for the keyguard's quorum. */
  rpcUrls?: string[]
  quorum?: number
  /** First block the grant watcher scans. Default: the deployment block with `deploy`. */
  startBlock?: number
  /** Saved as `keyguard` in the config. */
  keyguard?: OwnerNodeConfig['keyguard']
  /** Move an existing node's config and owner file aside (`*.replaced-<time>`) instead of refusing. */
  force?: boolean
  /** Words to restore instead of a new mnemonic. */
  mnemonic?: string
  /**
   * The release `verify-install` checks (saved as `release`); with a PCR-bound sealer that
   * covers the release PCR, its manifest's measurement is what init approves for that PCR.
   */
  release?: ReleaseConfig
}

export interface InitOwnerNodeResult {
  config: OwnerNodeConfig
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

/** Refuses (or, with `force`, moves aside) an existing node; checks the chain. */
async function prepareFolder(
  options: InitOwnerNodeOptions,
  paths: OwnerNodePaths,
): Promise<number> {
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
  const chainId = await rpcChainId(options.rpcUrl, options.chainId)
  // 0700 even when found looser, then checked with its parents: it will hold the secrets.
  await prepareDataDir(options.dataDir)
  await removeLeftoverTemps(paths)
  if (present) {
    const suffix = `replaced-${Date.now()}`
    for (const p of [paths.config, paths.owner]) {
      if (await exists(p)) await rename(p, `${p}.${suffix}`)
    }
  }
  return chainId
}

/**
 * Deploys the contracts (with `deploy`) and approves the keyguard operator, from the owner's
 * account (funded on a dev chain first).
 */
async function setUpChain(
  options: InitOwnerNodeOptions,
  paths: OwnerNodePaths,
  chainId: number,
  owner: { address: string; operatorAddress: string },
  sealer: ReturnType<typeof createSealer>,
  logger: OwnerNodeComponents['logger'] & object,
) {
  let contracts = options.contracts
  let startBlock = options.startBlock
  const provider = createProvider(options.rpcUrl, chainId)
  const secrets = await unwrapOwnerSecrets(paths.owner, sealer)
  try {
    if (options.deploy && (await provider.getBalance(owner.address)) === 0n) {
      await provider.send('anvil_setBalance', [owner.address, DEV_FUNDS]).catch((cause) => {
        throw new ChainUnreachableError('The owner account has no ETH to deploy with', {
          cause,
          details: { owner: owner.address },
          hint: 'Fund the owner address, or use a dev chain (anvil) with --deploy.',
        })
      })
    }
    const wallet = new Wallet(toHex(secrets.ethereumPrivateKey), provider)
    if (options.deploy) {
      const a: DigicapAddresses = await deployDigicap(wallet, {
        deploymentsDir: paths.deployments,
        replaceStale: true,
      })
      startBlock ??= a.deployBlock
      const { capsuleRegistry, nodeRegistry, accessController } = a
      contracts = { capsuleRegistry, nodeRegistry, accessController }
    }
    const operator = await ensureKeyguardOperator(
      provider,
      contracts as OwnerNodeConfig['contracts'],
      wallet,
      owner.operatorAddress,
      { devFund: options.deploy === true, logger, serialize: (fn) => ownerTransactions(paths, fn) },
    )
    return { contracts: contracts as OwnerNodeConfig['contracts'], startBlock, operator }
  } finally {
    secrets.ethereumPrivateKey.fill(0)
    secrets.operatorPrivateKey?.fill(0)
    secrets.libp2pSeed.fill(0)
    provider.destroy()
  }
}

/**
 * `init`: creates the sealer key, the owner (mnemonic, Ethereum key, recovery key, libp2p
 * seed) and the config; deploys the contracts with `deploy`.
 *
 * @throws {AlreadyInitialisedError} if the folder holds a node and `force` is not set.
 * @throws {ChainUnreachableError} | {@link ConfigError} | keyguard's sealer errors.
 */
export async function initOwnerNode(
  options: InitOwnerNodeOptions,
  components: OwnerNodeComponents = {},
): Promise<InitOwnerNodeResult> {
  const paths = ownerNodePaths(options.dataDir)
  const logger = components.logger ?? silent
  const chainId = await prepareFolder(options, paths)
  // The words come first: a PCR-bound key's policy names the key derived from them.
  const words = options.mnemonic ?? generateMnemonic()
  const sealer = await provisionSealer(options.sealer, {
    dataDir: options.dataDir,
    mnemonic: words,
    logger,
    release: options.release,
    // --force replaces the node: a TPM key bound to the old owner's words goes with it.
    replaceUnfitKey: options.force === true,
    ekRoots: options.keyguard?.ekRoots,
  })
  const { mnemonic, owner } = await initOwner({ path: paths.owner, sealer, mnemonic: words })
  const operatorAddress = owner.operatorAddress as string
  const chain = await setUpChain(
    options,
    paths,
    chainId,
    { ...owner, operatorAddress },
    sealer,
    logger,
  )
  const config: OwnerNodeConfig = {
    version: 1,
    dataDir: options.dataDir,
    rpcUrl: options.rpcUrl,
    chainId,
    contracts: chain.contracts,
    sealer: options.sealer,
    listen: options.listen ?? DEFAULT_LISTEN,
    bootstrap: options.bootstrap ?? [],
    ...(options.announce?.length ? { announce: options.announce } : {}),
    ...(options.rpcUrls?.length ? { rpcUrls: options.rpcUrls } : {}),
    ...(options.quorum !== undefined ? { quorum: options.quorum } : {}),
    ...(chain.startBlock !== undefined ? { startBlock: chain.startBlock } : {}),
    ...(options.keyguard ? { keyguard: options.keyguard } : {}),
    ...(options.release ? { release: options.release } : {}),
  }
  await saveOwnerNodeConfig(config)
  return {
    config,
    mnemonic,
    owner: {
      address: owner.address,
      peerId: peerIdOfPublicKey(owner.libp2pPublicKey),
      recoveryKeyId: owner.recoveryKeyId,
    },
    operator: chain.operator,
    sealer: await sealer.describe(),
    deployed: options.deploy === true,
  }
}
