/** The composition root: the data folder (config, identity, keys) → `@digicap/executor/node`. */
import { existsSync } from 'node:fs'
import { readFile, rename } from 'node:fs/promises'
import { toHex } from '@digicap/capsule-core'
import { removeStaleTemps, rpcChainId } from '@digicap/cli-kit'
import { defaultSandboxes, type SandboxSet } from '@digicap/executor'
import {
  createReceiverKeyFile,
  loadNodeAttestation,
  type ExecutorNode as NodeParts,
  openExecutorNode,
  readReceiverKeyFile,
} from '@digicap/executor/node'
import { deriveOwnerIdentity, generateMnemonic, normalizeMnemonic } from '@digicap/keyguard'
import { privateKeyFromSeed } from '@digicap/p2p'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  type ExecutorNodeConfig,
  executorNodePaths,
  loadConfig,
  resolveConfig,
  writeJsonAtomic,
} from './config.ts'
import { AlreadyInitialisedError, ConfigError } from './errors.ts'

/** The stock sandboxes (QuickJS, WASI, `data` summarised), from `@digicap/executor`. */
export { defaultSandboxes }
/** Reads a receiver key file (64 hex characters, the X25519 private key). */
export const readReceiverKey = readReceiverKeyFile

/** The keys `identity.json`'s mnemonic derives (keyguard's scheme); the caller zeroes them. */
export async function readIdentity(dataDir: string) {
  const file = executorNodePaths(dataDir).identity
  const raw = await readFile(file, 'utf8').then(JSON.parse, (cause) => {
    throw new ConfigError('Cannot read the identity file', { cause, details: { file } })
  })
  if (typeof raw?.mnemonic !== 'string') {
    throw new ConfigError('The identity file has no mnemonic', { details: { file } })
  }
  const id = await deriveOwnerIdentity(raw.mnemonic)
  id.recoveryKeyPair.privateKey.fill(0)
  id.operatorPrivateKey.fill(0)
  return id
}

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

/** Creates identity.json, receiver.key and config.json; says whether the words are new. */
export async function initExecutorNode(o: InitExecutorNodeOptions) {
  const paths = executorNodePaths(o.dataDir)
  const { dataDir, contracts } = o
  const draft = (chainId: number) =>
    resolveConfig({ flags: o.flags ?? {}, file: { version: 1, dataDir, chainId, contracts } })
  const rpcUrl = draft(o.chainId ?? 1).rpcUrl // every field checked before anything is written
  if (existsSync(paths.config) || existsSync(paths.identity)) {
    if (!o.force) {
      throw new AlreadyInitialisedError('This data folder already holds an executor-node', {
        details: { dataDir },
        hint: 'Use another --data-dir, or --force to move the old files aside.',
      })
    }
    const stamp = Date.now()
    for (const p of [paths.config, paths.identity, paths.receiverKey]) {
      if (existsSync(p)) await rename(p, `${p}.${stamp}.old`)
    }
  }
  const config = draft(await rpcChainId(rpcUrl, o.chainId))
  const words = o.mnemonic
  const mnemonic = words === undefined ? generateMnemonic() : normalizeMnemonic(words)
  const id = await deriveOwnerIdentity(mnemonic)
  const peerId = peerIdFromPrivateKey(await privateKeyFromSeed(id.libp2pSeed)).toString()
  await writeJsonAtomic(paths.identity, { version: 1, mnemonic })
  const receiverPublicKey = toHex(await createReceiverKeyFile(paths.receiverKey))
  await writeJsonAtomic(paths.config, config)
  for (const k of [id.ethereumPrivateKey, id.libp2pSeed, id.operatorPrivateKey]) k.fill(0)
  id.recoveryKeyPair.privateKey.fill(0)
  return { config, address: id.address, peerId, receiverPublicKey, generated: !words, mnemonic }
}

export interface ExecutorNode extends NodeParts {
  readonly config: ExecutorNodeConfig
}

export interface CreateExecutorNodeOptions {
  /** Override the listen addresses (tests: loopback port 0). */
  listen?: string[] | undefined
  /** Start the executor (key releases; with a TPM, attestation). Default true. */
  executor?: boolean | undefined
  /** Load the TPM attestation key when the config names a TPM. Default true. */
  attestation?: boolean | undefined
  sandboxes?: SandboxSet | undefined
}

/** Loads the config and identity from `dataDir` and opens the node. */
export async function createExecutorNode(
  dataDir: string,
  env: NodeJS.ProcessEnv = {},
  options: CreateExecutorNodeOptions = {},
): Promise<ExecutorNode> {
  const config = await loadConfig(dataDir, env)
  // Leftovers of a write cut by a crash (init's config or identity).
  await removeStaleTemps(dataDir)
  const paths = executorNodePaths(dataDir)
  const tcti = options.attestation === false ? undefined : config.tcti
  const attestation =
    tcti === undefined
      ? undefined
      : await loadNodeAttestation({
          agent: (await import('@digicap/attestation/agent')).createAttestationAgent({ tcti }),
          recordFile: paths.attestationRecord,
        })
  const id = await readIdentity(dataDir)
  try {
    const en = await openExecutorNode({
      ...config,
      readRpcUrls: config.rpcUrls,
      accountKey: id.ethereumPrivateKey,
      libp2pSeed: id.libp2pSeed,
      listen: options.listen ?? config.listen,
      ipfsDir: paths.ipfs,
      receiverReplaysFile: paths.receiverReplays,
      attestation,
      sandboxes: options.sandboxes,
      start: options.executor,
    })
    return { ...en, config }
  } finally {
    id.ethereumPrivateKey.fill(0)
    id.libp2pSeed.fill(0)
  }
}
