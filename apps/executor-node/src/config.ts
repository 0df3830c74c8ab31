/**
 * The executor-node config: `<dataDir>/config.json` (JSON, mode 0600, written atomically),
 * plus environment overrides, declared once with cli-kit's `defineConfig`. Secrets live apart:
 * `identity.json` (the BIP-39 mnemonic of the account and libp2p identity) and `receiver.key`.
 */
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import {
  CHAIN_CONFIG_FIELDS,
  type ConfigSources,
  configFieldError,
  defineConfig,
  readConfigJson,
} from '@digicap/cli-kit'

export { writeJsonAtomic } from '@digicap/cli-kit'

export interface ExecutorNodeConfig {
  version: 1
  /** Absolute path of the data folder. */
  dataDir: string
  rpcUrl: string
  /** More RPCs of the same chain: registry checks go through a quorum of `rpcUrl` + these. */
  rpcUrls?: string[]
  /** How many RPCs must agree on a registry read. Default: 1 for one RPC, else a majority. */
  quorum?: number
  chainId: number
  contracts: { capsuleRegistry: string; nodeRegistry: string; accessController: string }
  /** libp2p listen addresses. */
  listen: string[]
  /** Peers to dial at start. */
  bootstrap: string[]
  /** Keyguard multiaddrs dialled before each run. */
  keyguardAddrs: string[]
  /** Try the fast path first by default. */
  fast: boolean
  /** Capsule fetch idle timeout, ms. Default 120 000. */
  fetchTimeoutMs?: number
  /** The attestation TPM (opt-in): `device:/dev/tpmrm0` or `swtpm:host=…,port=…`. */
  tcti?: string
}

export function executorNodePaths(dataDir: string) {
  return {
    config: join(dataDir, 'config.json'),
    identity: join(dataDir, 'identity.json'),
    receiverKey: join(dataDir, 'receiver.key'),
    /** The result receiver's spent run and grant ids (replays refused across restarts). */
    receiverReplays: join(dataDir, 'receiver-replays.json'),
    ipfs: join(dataDir, 'ipfs'),
    /** The attestation record (EK, AK, boot PCRs) whose SHA-256 `register` registers. */
    attestationRecord: join(dataDir, 'attestation-record.bin'),
  }
}

export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/4011']

/** The data folder: flag, then `DIGICAP_DATA_DIR`, then `~/.digicap/executor-node`. */
export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return resolve(flag ?? env.DIGICAP_DATA_DIR ?? join(homedir(), '.digicap', 'executor-node'))
}

const LIST = { type: 'list', default: [] as string[] } as const

/** The fields: file key, type, environment variable, `init` flag. */
export const EXECUTOR_NODE_CONFIG = defineConfig<ExecutorNodeConfig>('executor-node', {
  ...CHAIN_CONFIG_FIELDS,
  rpcUrl: { ...CHAIN_CONFIG_FIELDS.rpcUrl, flag: 'rpc-url' },
  rpcUrls: {
    type: 'list',
    optional: true,
    env: 'DIGICAP_RPC_URLS',
    flag: 'extra-rpc-url',
    pattern: CHAIN_CONFIG_FIELDS.rpcUrl.pattern,
  },
  quorum: { type: 'number', min: 1, optional: true, flag: 'quorum' },
  listen: { ...LIST, default: DEFAULT_LISTEN, env: 'DIGICAP_LISTEN', flag: 'listen' },
  bootstrap: { ...LIST, env: 'DIGICAP_BOOTSTRAP', flag: 'bootstrap' },
  keyguardAddrs: { ...LIST, env: 'DIGICAP_KEYGUARD_ADDRS', flag: 'keyguard-addr' },
  fast: { type: 'boolean', default: false, env: 'DIGICAP_FAST', flag: 'fast' },
  fetchTimeoutMs: { type: 'number', min: 1, optional: true },
  tcti: {
    type: 'string',
    optional: true,
    env: 'DIGICAP_TCTI',
    flag: 'tcti',
    pattern: /^(device:\/|swtpm:)\S+$/,
  },
})

/** The config from `sources`, with the one check across fields: a quorum the RPCs can make. */
export function resolveConfig(sources: ConfigSources): ExecutorNodeConfig {
  const c = EXECUTOR_NODE_CONFIG.resolve(sources)
  if (c.quorum !== undefined && c.quorum > 1 + (c.rpcUrls?.length ?? 0))
    configFieldError('executor-node')('quorum', sources.fileName ?? '(config)')
  return c
}

/** Validates a parsed config object. @throws {ConfigError} naming the field. */
export const checkConfig = (raw: unknown, file: string) =>
  resolveConfig({ file: raw, fileName: file })

/** The environment's overrides (each field's variable, e.g. `DIGICAP_FAST=1`, `DIGICAP_TCTI`). */
export const applyEnv = (c: ExecutorNodeConfig, env: NodeJS.ProcessEnv) =>
  resolveConfig({ file: c, env })

/**
 * Reads `<dataDir>/config.json` and applies the environment.
 * @throws {NotInitialisedError} if there is no config file. @throws {ConfigError}
 */
export async function loadConfig(dataDir: string, env: NodeJS.ProcessEnv = {}) {
  const file = executorNodePaths(dataDir).config
  const raw = await readConfigJson(file, dataDir, EXECUTOR_NODE_CONFIG.app)
  return applyEnv({ ...checkConfig(raw, file), dataDir }, env)
}
