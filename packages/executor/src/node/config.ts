/**
 * The executor-node config: `<dataDir>/config.json` (0600, written atomically) and its
 * environment overrides, declared once with cli-kit's `defineConfig`. Secrets live apart, in
 * `secrets.json`, wrapped to the host's TPM (else to the INSECURE software sealer).
 */
import { join } from 'node:path'
import {
  CHAIN_CONFIG_FIELDS,
  type ConfigSources,
  configFieldError,
  defineConfig,
  readConfigJson,
  UsageError,
} from '@digicap/cli-kit'

/** See EXECUTOR_NODE_CONFIG for each field's variable and flag, the README for its meaning. */
export interface ExecutorNodeConfig {
  version: 1
  dataDir: string
  rpcUrl: string
  /** More RPCs of the chain: registry reads need `quorum` of `rpcUrl` + these to agree. */
  rpcUrls?: string[]
  quorum?: number
  chainId: number
  contracts: { capsuleRegistry: string; nodeRegistry: string; accessController: string }
  listen: string[]
  bootstrap: string[]
  /** Keyguard multiaddrs dialled before each run. */
  keyguardAddrs: string[]
  /** Fast path first by default. */
  fast: boolean
  /** Capsule fetch idle timeout, ms (default 120 000). */
  fetchTimeoutMs?: number
  /** The attestation TPM (opt-in): `device:/dev/tpmrm0` or `swtpm:host=…,port=…`. */
  tcti?: string
  /** Run image capsules under runc (opt-in: needs root, runc, umoci; changes the measurement). */
  oci?: boolean
  /**
   * With `oci`: the OCI state directory (image runs' tmpfs and runc state). It must be a folder
   * only the executor's uid controls (ADR 0075); default `/run/digicap-oci` for root.
   */
  ociStateDir?: string
  /** With a TPM: hold each measured run phase until a verifier quoted it, at most ms (opt-in). */
  attestHoldMs?: number
  /**
   * With `attestHoldMs` and a committee watching: each phase waits for `challengers` distinct
   * peers (the committee's size), at most `graceMs` after its first quote (phase-hold.ts).
   */
  attestHold?: { challengers?: number; graceMs?: number }
  /** The committee settlement (AttestationHub, CommitteeSortition): needed by `serve --role verifier`. */
  settlement?: { attestationHub: string; committeeSortition: string }
  /**
   * The verifier role: a PEM file of the TPM makers' CA certificates; an executor's record is
   * activated only if its EK certificate was issued by one of them (ADR 0069). Default none.
   */
  verifier?: { ekRoots?: string }
}

export const executorNodePaths = (dataDir: string) => ({
  config: join(dataDir, 'config.json'),
  /** The wallet words and receiver key, wrapped to the host's sealer (keyguard's sealed secrets). */
  secrets: join(dataDir, 'secrets.json'),
  /** Plain files of an older install: sealed into `secrets` on first open, then removed. */
  identity: join(dataDir, 'identity.json'),
  receiverKey: join(dataDir, 'receiver.key'),
  /** The result receiver's spent run and grant ids (replays refused across restarts). */
  receiverReplays: join(dataDir, 'receiver-replays.json'),
  /**
   * The verifier's signed votes (slashing protection, ADR 0093): beside the key, created by
   * `init`; a verifier refuses to sign without it.
   */
  signedVotes: join(dataDir, 'signed-votes.json'),
  /** Results waiting for offline receivers, one file each (sent by whichever node runs next). */
  pendingResults: join(dataDir, 'pending-results'),
  ipfs: join(dataDir, 'ipfs'),
  /** The attestation record (EK, AK, boot PCRs) whose SHA-256 `register` registers. */
  attestationRecord: join(dataDir, 'attestation-record.bin'),
})

const ADDRESS = { type: 'string', optional: true, pattern: /^0x[0-9a-fA-F]{40}$/ } as const

/** The TCTIs the attestation agent speaks. */
const TCTI = /^(device:\/|swtpm:)\S+$/

const list = (env: string, flag: string, fallback: string[] = []) =>
  ({ type: 'list', default: fallback, env, flag }) as const

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
  listen: list('DIGICAP_LISTEN', 'listen', ['/ip4/0.0.0.0/tcp/4011']),
  bootstrap: list('DIGICAP_BOOTSTRAP', 'bootstrap'),
  keyguardAddrs: list('DIGICAP_KEYGUARD_ADDRS', 'keyguard-addr'),
  fast: { type: 'boolean', default: false, env: 'DIGICAP_FAST', flag: 'fast' },
  fetchTimeoutMs: { type: 'number', min: 1, optional: true },
  tcti: { type: 'string', optional: true, env: 'DIGICAP_TCTI', flag: 'tcti', pattern: TCTI },
  oci: { type: 'boolean', optional: true, env: 'DIGICAP_OCI', flag: 'oci' },
  ociStateDir: { type: 'string', optional: true, env: 'DIGICAP_OCI_STATE_DIR' },
  attestHoldMs: { type: 'number', min: 1, optional: true, env: 'DIGICAP_ATTEST_HOLD_MS' },
  'attestHold.challengers': {
    type: 'number',
    min: 1,
    optional: true,
    env: 'DIGICAP_ATTEST_CHALLENGERS',
  },
  'attestHold.graceMs': { type: 'number', min: 1, optional: true, env: 'DIGICAP_ATTEST_GRACE_MS' },
  'settlement.attestationHub': {
    ...ADDRESS,
    env: 'DIGICAP_ATTESTATION_HUB',
    flag: 'attestation-hub',
  },
  'settlement.committeeSortition': {
    ...ADDRESS,
    env: 'DIGICAP_COMMITTEE_SORTITION',
    flag: 'committee-sortition',
  },
  'verifier.ekRoots': { type: 'string', optional: true, env: 'DIGICAP_EK_ROOTS' },
})

/** The config from `sources`, and the check across fields: a quorum its RPCs can make. */
export function resolveConfig(sources: ConfigSources): ExecutorNodeConfig {
  const c = EXECUTOR_NODE_CONFIG.resolve(sources)
  const rpcs = 1 + (c.rpcUrls?.length ?? 0)
  if ((c.quorum ?? 1) <= rpcs) return c
  if (sources.flags?.quorum !== undefined)
    throw new UsageError('--quorum must be 1..the number of RPC URLs', {
      details: { quorum: c.quorum, rpcs },
    })
  return configFieldError(EXECUTOR_NODE_CONFIG.app)('quorum', sources.fileName ?? '(config)')
}

/** Validates a parsed config object. @throws {ConfigError} naming the field. */
export const checkConfig = (raw: unknown, file: string) =>
  resolveConfig({ file: raw, fileName: file })

/** The environment's overrides (each field's variable, e.g. `DIGICAP_FAST=1`, `DIGICAP_TCTI`). */
export const applyEnv = (c: ExecutorNodeConfig, env: NodeJS.ProcessEnv) =>
  resolveConfig({ file: c, env })

/** `<dataDir>/config.json` with the environment. @throws {NotInitialisedError} @throws {ConfigError} */
export async function loadConfig(dataDir: string, env: NodeJS.ProcessEnv = {}) {
  const file = executorNodePaths(dataDir).config
  const raw = await readConfigJson(file, dataDir, EXECUTOR_NODE_CONFIG.app)
  return applyEnv({ ...checkConfig(raw, file), dataDir }, env)
}
