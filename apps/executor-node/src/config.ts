/**
 * The executor-node config: `<dataDir>/config.json` (JSON, mode 0600, written atomically),
 * plus environment overrides. Secrets live apart: `identity.json` (the BIP-39 mnemonic the
 * Ethereum account and libp2p identity derive from) and `receiver.key` (X25519), both 0600.
 */
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

import {
  ConfigError,
  checkChainConfigFields,
  configFieldError,
  readConfigJson,
} from '@digicap/cli-kit'

export { writeJsonAtomic } from '@digicap/cli-kit'

export interface ExecutorNodeConfig {
  version: 1
  /** Absolute path of the data folder. */
  dataDir: string
  rpcUrl: string
  /**
   * More RPC URLs of the same chain: the registry checks read `rpcUrl` + these through a
   * quorum (a single lying RPC cannot vouch for a capsule). Transactions still use `rpcUrl`.
   */
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
  /** Capsule fetch idle timeout, ms (no byte for this long fails the run). Default 120 000. */
  fetchTimeoutMs?: number
  /**
   * The node's TPM for attestation (opt-in): `device:/dev/tpmrm0` or
   * `swtpm:host=…,port=…` (the TCTIs `@digicap/tpm` speaks). Absent: no attestation key.
   */
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
    runs: join(dataDir, 'runs'),
    /** The attestation record (EK, AK, boot PCRs) whose SHA-256 `register` registers. */
    attestationRecord: join(dataDir, 'attestation-record.bin'),
  }
}

export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/4011']

/** The data folder: flag, then `DIGICAP_DATA_DIR`, then `~/.digicap/executor-node`. */
export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return resolve(flag ?? env.DIGICAP_DATA_DIR ?? join(homedir(), '.digicap', 'executor-node'))
}

const bad = configFieldError('executor-node')
const RPC_URL = /^(https?|wss?):\/\//
/** The TCTIs the attestation agent accepts. */
export const TCTI = /^(device:\/|swtpm:)\S+$/

/** A config's `tcti`: absent, or one the attestation agent speaks. */
export function checkTcti(tcti: unknown, file: string): void {
  if (tcti !== undefined && (typeof tcti !== 'string' || !TCTI.test(tcti))) bad('tcti', file)
}

/** Validates a parsed config object. */
export function checkConfig(raw: unknown, file: string): ExecutorNodeConfig {
  checkChainConfigFields(raw, file, bad)
  const c = raw as Record<string, unknown>
  for (const list of ['listen', 'bootstrap', 'keyguardAddrs']) {
    const v = c[list]
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) bad(list, file)
  }
  if (typeof c.fast !== 'boolean') bad('fast', file)
  if (
    c.fetchTimeoutMs !== undefined &&
    (!Number.isSafeInteger(c.fetchTimeoutMs) || (c.fetchTimeoutMs as number) <= 0)
  )
    bad('fetchTimeoutMs', file)
  checkTcti(c.tcti, file)
  const urls = c.rpcUrls
  if (
    urls !== undefined &&
    (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string' || !RPC_URL.test(u)))
  ) {
    bad('rpcUrls', file)
  }
  const rpcs = 1 + (Array.isArray(urls) ? urls.length : 0)
  const q = c.quorum
  if (q !== undefined && (typeof q !== 'number' || !Number.isSafeInteger(q) || q < 1 || q > rpcs)) {
    bad('quorum', file)
  }
  return c as unknown as ExecutorNodeConfig
}

const list = (v: string | undefined): string[] | undefined =>
  v === undefined
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0)

/**
 * Environment overrides: `DIGICAP_RPC_URL`, `DIGICAP_RPC_URLS`, `DIGICAP_LISTEN`,
 * `DIGICAP_BOOTSTRAP`, `DIGICAP_KEYGUARD_ADDRS` (comma lists), `DIGICAP_FAST=1|0`,
 * `DIGICAP_TCTI` (the attestation TPM).
 */
export function applyEnv(c: ExecutorNodeConfig, env: NodeJS.ProcessEnv): ExecutorNodeConfig {
  const out = { ...c }
  if (env.DIGICAP_RPC_URL) out.rpcUrl = env.DIGICAP_RPC_URL
  const rpcUrls = list(env.DIGICAP_RPC_URLS)
  if (rpcUrls !== undefined) out.rpcUrls = rpcUrls
  out.listen = list(env.DIGICAP_LISTEN) ?? out.listen
  out.bootstrap = list(env.DIGICAP_BOOTSTRAP) ?? out.bootstrap
  out.keyguardAddrs = list(env.DIGICAP_KEYGUARD_ADDRS) ?? out.keyguardAddrs
  if (env.DIGICAP_FAST === '1') out.fast = true
  if (env.DIGICAP_FAST === '0') out.fast = false
  if (env.DIGICAP_TCTI) {
    if (!TCTI.test(env.DIGICAP_TCTI)) {
      throw new ConfigError('DIGICAP_TCTI must be device:<path> or swtpm:host=…,port=…', {
        details: { value: env.DIGICAP_TCTI },
      })
    }
    out.tcti = env.DIGICAP_TCTI
  }
  return out
}

/**
 * Reads `<dataDir>/config.json` and applies the environment.
 * @throws {NotInitialisedError} if there is no config file.
 * @throws {ConfigError} if it is malformed.
 */
export async function loadConfig(
  dataDir: string,
  env: NodeJS.ProcessEnv = {},
): Promise<ExecutorNodeConfig> {
  const file = executorNodePaths(dataDir).config
  const raw = await readConfigJson(file, dataDir, 'executor-node')
  return applyEnv({ ...checkConfig(raw, file), dataDir }, env)
}
