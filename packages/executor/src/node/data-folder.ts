/**
 * The executor node of a data folder (`executor-node`'s): `<dataDir>/config.json`, the wallet
 * words and receiver key sealed in `secrets.json` (keyguard's sealed secrets, to the config's
 * TPM, else the INSECURE software sealer) → `openExecutorNode`.
 */
import { existsSync } from 'node:fs'
import { readFile, rename } from 'node:fs/promises'
import { type Address, generateX25519KeyPair, toHex, x25519PublicKey } from '@digicap/capsule-core'
import {
  AlreadyInitialisedError,
  removeStaleTemps,
  rpcChainId,
  writeFileAtomic,
  writeJsonAtomic,
} from '@digicap/cli-kit'
import {
  deriveOwnerIdentity,
  generateMnemonic,
  normalizeMnemonic,
  sealNodeSecrets,
} from '@digicap/keyguard'
import { privateKeyFromSeed } from '@digicap/p2p/light'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { SandboxSet } from '../sandbox/select.ts'
import { loadNodeAttestation } from './attestation.ts'
import { type ExecutorNodeConfig, executorNodePaths, loadConfig, resolveConfig } from './config.ts'
import {
  knownAddressAccount,
  nodeKeysFile,
  readNodeKeys,
  sealerOf,
  wipeNodeKeys,
  writeNodeKeys,
} from './node-keys.ts'
import { openExecutorNode } from './open.ts'
import type { ExecutorNode } from './types.ts'
import { decodeSignedVotes, encodeSignedVotes } from './verifier/signed-votes-file.ts'

export interface InitExecutorNodeOptions {
  dataDir: string
  contracts: ExecutorNodeConfig['contracts']
  /** Expected chain id (default: asked from the RPC). */
  chainId?: number | undefined
  /** The other fields by `init` flag name (`rpc-url`, `fast`, `tcti`, …: EXECUTOR_NODE_CONFIG). */
  flags?: Readonly<Record<string, unknown>> | undefined
  /** Import these words instead of generating new ones. */
  mnemonic?: string | undefined
  /** Move an existing node's files aside. */
  force?: boolean | undefined
}

/** Creates secrets.json (sealed) and config.json; says whether the words are new. */
export async function initExecutorNode(o: InitExecutorNodeOptions) {
  const { dataDir, contracts } = o
  const paths = executorNodePaths(dataDir)
  const draft = (chainId: number) =>
    resolveConfig({ flags: o.flags ?? {}, file: { version: 1, dataDir, chainId, contracts } })
  const { rpcUrl } = draft(o.chainId ?? 1) // every field checked before anything is written
  const old = [
    paths.config,
    paths.secrets,
    paths.identity,
    paths.receiverKey,
    nodeKeysFile(dataDir),
  ].filter((p) => existsSync(p))
  if (old.length > 0 && !o.force) {
    throw new AlreadyInitialisedError('This data folder already holds an executor-node', {
      details: { dataDir },
      hint: 'Use another --data-dir, or --force to move the old files aside.',
    })
  }
  for (const p of old) await rename(p, `${p}.${Date.now()}.old`)
  const config = draft(await rpcChainId(rpcUrl, o.chainId))
  const mnemonic = o.mnemonic === undefined ? generateMnemonic() : normalizeMnemonic(o.mnemonic)
  const id = await deriveOwnerIdentity(mnemonic)
  const peerId = peerIdFromPrivateKey(await privateKeyFromSeed(id.libp2pSeed)).toString()
  const { privateKey: receiverKey } = generateX25519KeyPair()
  await sealNodeSecrets(paths, sealerOf(config, true), { mnemonic, receiverKey })
  // the keys the words derive, encrypted under them: no start derives them again (ADR 0101)
  await writeNodeKeys(dataDir, mnemonic, {
    ethereumPrivateKey: id.ethereumPrivateKey,
    libp2pSeed: id.libp2pSeed,
    address: id.address,
  })
  const receiverPublicKey = toHex(x25519PublicKey(receiverKey))
  receiverKey.fill(0)
  await writeJsonAtomic(paths.config, config)
  const generated = o.mnemonic === undefined
  const voteRecord = await initSignedVotes(paths.signedVotes, id.address, generated)
  for (const k of [id.ethereumPrivateKey, id.libp2pSeed, id.operatorPrivateKey]) k.fill(0)
  id.recoveryKeyPair.privateKey.fill(0)
  return { config, address: id.address, peerId, receiverPublicKey, generated, mnemonic, voteRecord }
}

/**
 * The verifier's signed-vote record at init (ADR 0093, amended by review 135): `created` for new
 * words (a key that never signed), `kept` for a readable record of this key, else `none`.
 * Imported words with no record of theirs here are a restore or a move: the key may have open
 * votes elsewhere (a dead disk mid-job), and an empty record would let the node take its seat
 * again and sign another vote for a slot it signed before. So none is made, and `serve --role
 * verifier` refuses (`missing`) until the operator restores the record or says there is nothing
 * open (`--new-vote-record`). Any other file there is moved aside like the node's other old files.
 */
async function initSignedVotes(
  path: string,
  address: Address,
  generated: boolean,
): Promise<'created' | 'kept' | 'none'> {
  if (existsSync(path)) {
    try {
      const held = decodeSignedVotes(await readFile(path, 'utf8'), path)
      if (held.signer === address.toLowerCase()) return 'kept'
    } catch {
      // Damaged: moved aside below, never read as this key's.
    }
    await rename(path, `${path}.${Date.now()}.old`)
  }
  if (!generated) return 'none'
  await writeFileAtomic(path, encodeSignedVotes({ signer: address, entries: [], closed: [] }))
  return 'created'
}

/** An executor node with the config it was opened from. */
export type ConfiguredExecutorNode = ExecutorNode & { readonly config: ExecutorNodeConfig }

export interface CreateExecutorNodeOptions {
  /** Override the listen addresses (tests: loopback port 0). */
  listen?: string[] | undefined
  /** Start it (key releases; with a TPM, attestation). Default true. */
  executor?: boolean | undefined
  /** Load the TPM attestation key when the config names a TPM. Default true. */
  attestation?: boolean | undefined
  sandboxes?: SandboxSet | undefined
  /** Run gossipsub (announcements). Default true; a one-shot run passes false (ADR 0042). */
  pubsub?: boolean | undefined
  /** The daemon's logger (fast-path fallbacks, warnings). */
  logger?: { info(message: string): void; warn(message: string): void } | undefined
}

/** Loads the config and identity from `dataDir` and opens the node. */
export async function createExecutorNode(
  dataDir: string,
  env: NodeJS.ProcessEnv = {},
  options: CreateExecutorNodeOptions = {},
): Promise<ConfiguredExecutorNode> {
  const config = await loadConfig(dataDir, env)
  await removeStaleTemps(dataDir) // leftovers of a write cut by a crash (init's files)
  const paths = executorNodePaths(dataDir)
  const { tcti } = config
  const attestation =
    tcti === undefined || options.attestation === false
      ? undefined
      : await loadNodeAttestation({ tcti, recordFile: paths.attestationRecord })
  // from node-keys.json when it decrypts under the words (ADR 0101): no BIP-32 at start, and no
  // secp256k1 until the account first signs
  const keys = await readNodeKeys(config)
  try {
    const en = await openExecutorNode({
      ...config,
      readRpcUrls: config.rpcUrls,
      signer: knownAddressAccount(keys),
      libp2pSeed: keys.libp2pSeed,
      listen: options.listen ?? config.listen,
      ipfsDir: paths.ipfs,
      receiverReplaysFile: paths.receiverReplays,
      pendingResultsDir: paths.pendingResults,
      attestation,
      oci:
        config.oci && config.ociStateDir !== undefined
          ? { stateDir: config.ociStateDir }
          : config.oci,
      sandboxes: options.sandboxes,
      start: options.executor,
      pubsub: options.pubsub,
      logger: options.logger,
    })
    return { ...en, config }
  } finally {
    wipeNodeKeys(keys)
  }
}
