/**
 * The pi-node config: `<dataDir>/config.json` (JSON, mode 0600, written atomically), plus
 * environment overrides. Only non-secret facts live here; secrets are in the owner file,
 * wrapped to the sealer.
 */
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import {
  ConfigError,
  checkChainConfigFields,
  configFieldError,
  readConfigJson,
  writeJsonAtomic,
} from '@digicap/cli-kit'

export { writeJsonAtomic }

export type SealerConfig =
  | { kind: 'tpm2'; tcti: string; handle?: number }
  | { kind: 'software'; keyFile: string; allowInsecure: boolean }

export interface PiNodeConfig {
  version: 1
  /** Absolute path of the data folder. */
  dataDir: string
  rpcUrl: string
  chainId: number
  contracts: { capsuleRegistry: string; nodeRegistry: string; accessController: string }
  sealer: SealerConfig
  /** libp2p listen addresses of `serve`. */
  listen: string[]
  /** Peers to dial at start. */
  bootstrap: string[]
  /** Public multiaddrs `serve` advertises besides its listen addresses (a node behind NAT). */
  announce?: string[]
  /** More RPC URLs of the same chain: the keyguard reads grants from `rpcUrl` + these. */
  rpcUrls?: string[]
  /** How many RPCs must agree on a grant log. Default: 1 for one RPC, else a majority. */
  quorum?: number
  /** First block the grant watcher scans (the contracts' deployment block). Default 0. */
  startBlock?: number
  /** The keyguard that `serve` runs. */
  keyguard?: KeyguardConfig
}

export interface KeyguardConfig {
  /** Blocks a grant must be buried under. Default 0 on a dev chain (31337, 1337), else 3. */
  confirmations?: number
  /** Answer signed AccessRequests directly over libp2p (fast path). Default true. */
  fastPath?: boolean
  /** Grant watcher poll period, ms. Default 1000. */
  pollIntervalMs?: number
}

/** Confirmations `serve` uses: the config's, else 0 on a dev chain and 3 elsewhere. */
export function confirmationsFor(config: PiNodeConfig): number {
  return config.keyguard?.confirmations ?? (DEV_CHAINS.has(config.chainId) ? 0 : 3)
}

const DEV_CHAINS = new Set([31337, 1337])

/** Files and folders inside the data folder. */
export function piNodePaths(dataDir: string) {
  return {
    config: join(dataDir, 'config.json'),
    owner: join(dataDir, 'owner.json'),
    /** Held while the owner account sends transactions (see `ownerTransactions`). */
    ownerLock: join(dataDir, 'owner-tx.lock'),
    keys: join(dataDir, 'keys'),
    ipfs: join(dataDir, 'ipfs'),
    capsules: join(dataDir, 'capsules'),
    deployments: join(dataDir, 'deployments'),
    softwareKey: join(dataDir, 'sealer.pem'),
    serve: join(dataDir, 'serve.json'),
    keyguard: join(dataDir, 'keyguard'),
    journal: join(dataDir, 'keyguard', 'journal'),
  }
}

export const DEFAULT_TCTI = 'device:/dev/tpmrm0'
export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/4001']

/** The data folder: flag, then `DIGICAP_DATA_DIR`, then `~/.digicap/pi-node`. */
export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return resolve(flag ?? env.DIGICAP_DATA_DIR ?? join(homedir(), '.digicap', 'pi-node'))
}

const bad = configFieldError('pi-node')

/** Validates a parsed config object. */
export function checkConfig(raw: unknown, file: string): PiNodeConfig {
  checkChainConfigFields(raw, file, bad)
  const c = raw as Record<string, unknown>
  const s = c.sealer as Record<string, unknown> | undefined
  if (s?.kind === 'tpm2') {
    if (typeof s.tcti !== 'string' || s.tcti.length === 0) bad('sealer.tcti', file)
  } else if (s?.kind === 'software') {
    if (typeof s.keyFile !== 'string' || typeof s.allowInsecure !== 'boolean') bad('sealer', file)
  } else bad('sealer.kind', file)
  for (const list of ['listen', 'bootstrap']) {
    const v = c[list]
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) bad(list, file)
  }
  for (const list of ['announce', 'rpcUrls']) {
    const v = c[list]
    if (v !== undefined && (!Array.isArray(v) || v.some((x) => typeof x !== 'string')))
      bad(list, file)
  }
  const count = (v: unknown, min: number) =>
    v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v >= min)
  if (!count(c.quorum, 1)) bad('quorum', file)
  if (!count(c.startBlock, 0)) bad('startBlock', file)
  const kg = c.keyguard as Record<string, unknown> | undefined
  if (kg !== undefined) {
    if (typeof kg !== 'object' || kg === null) bad('keyguard', file)
    if (!count(kg.confirmations, 0)) bad('keyguard.confirmations', file)
    if (!count(kg.pollIntervalMs, 10)) bad('keyguard.pollIntervalMs', file)
    if (kg.fastPath !== undefined && typeof kg.fastPath !== 'boolean')
      bad('keyguard.fastPath', file)
  }
  return c as unknown as PiNodeConfig
}

/**
 * Reads `<dataDir>/config.json` and applies environment overrides: `DIGICAP_RPC_URL`,
 * `DIGICAP_TCTI` (tpm2 sealer), `DIGICAP_SEALER=tpm2|software`,
 * `DIGICAP_ALLOW_INSECURE_SEALER=1`, `DIGICAP_LISTEN`, `DIGICAP_BOOTSTRAP`, `DIGICAP_ANNOUNCE`
 * and `DIGICAP_RPC_URLS` (comma lists), `DIGICAP_CONFIRMATIONS`.
 *
 * @throws {NotInitialisedError} if there is no config file.
 * @throws {ConfigError} if it is malformed.
 */
export async function loadConfig(
  dataDir: string,
  env: NodeJS.ProcessEnv = {},
): Promise<PiNodeConfig> {
  const file = piNodePaths(dataDir).config
  const raw = await readConfigJson(file, dataDir, 'pi-node')
  const config = checkConfig(raw, file)
  return applyEnv({ ...config, dataDir }, env)
}

/** Applies the environment overrides to a config. */
export function applyEnv(config: PiNodeConfig, env: NodeJS.ProcessEnv): PiNodeConfig {
  const out: PiNodeConfig = { ...config }
  if (env.DIGICAP_RPC_URL) out.rpcUrl = env.DIGICAP_RPC_URL
  const kind = env.DIGICAP_SEALER
  if (kind !== undefined && kind !== '' && kind !== 'tpm2' && kind !== 'software') {
    throw new ConfigError('DIGICAP_SEALER must be tpm2 or software', { details: { value: kind } })
  }
  if (kind === 'software' && out.sealer.kind !== 'software') {
    out.sealer = {
      kind: 'software',
      keyFile: piNodePaths(config.dataDir).softwareKey,
      allowInsecure: false,
    }
  } else if (kind === 'tpm2' && out.sealer.kind !== 'tpm2') {
    out.sealer = { kind: 'tpm2', tcti: DEFAULT_TCTI }
  }
  if (env.DIGICAP_TCTI && out.sealer.kind === 'tpm2')
    out.sealer = { ...out.sealer, tcti: env.DIGICAP_TCTI }
  if (env.DIGICAP_ALLOW_INSECURE_SEALER === '1' && out.sealer.kind === 'software') {
    out.sealer = { ...out.sealer, allowInsecure: true }
  }
  if (env.DIGICAP_LISTEN) out.listen = env.DIGICAP_LISTEN.split(',').filter(Boolean)
  if (env.DIGICAP_BOOTSTRAP) out.bootstrap = env.DIGICAP_BOOTSTRAP.split(',').filter(Boolean)
  if (env.DIGICAP_ANNOUNCE) out.announce = env.DIGICAP_ANNOUNCE.split(',').filter(Boolean)
  if (env.DIGICAP_RPC_URLS) out.rpcUrls = env.DIGICAP_RPC_URLS.split(',').filter(Boolean)
  if (env.DIGICAP_CONFIRMATIONS !== undefined && env.DIGICAP_CONFIRMATIONS !== '') {
    const n = Number(env.DIGICAP_CONFIRMATIONS)
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new ConfigError('DIGICAP_CONFIRMATIONS must be a whole number', {
        details: { value: env.DIGICAP_CONFIRMATIONS },
      })
    }
    out.keyguard = { ...out.keyguard, confirmations: n }
  }
  return out
}

/** Saves the config (without env overrides applied: pass the one read from disk). */
export async function saveConfig(config: PiNodeConfig): Promise<void> {
  await writeJsonAtomic(piNodePaths(config.dataDir).config, config)
}
