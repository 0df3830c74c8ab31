/**
 * The owner node's config: `<dataDir>/config.json` (JSON, mode 0600, written atomically), plus
 * environment overrides. Only non-secret facts live here; secrets are in the owner file,
 * wrapped to the sealer.
 */
import { join } from 'node:path'
import {
  CHAIN_CONFIG_FIELDS,
  ConfigError,
  configFieldError,
  defineConfig,
  UsageError,
  writeJsonAtomic,
} from '@digicap/cli-kit'
import { checkDataDir } from './data-dir.ts'

export type SealerConfig =
  | {
      kind: 'tpm2'
      tcti: string
      handle?: number
      /**
       * PCRs the wrapping key is bound to (created with PolicyAuthorize of the owner's
       * authorizing key; `init` approves their values). Absent: a key without a PCR policy.
       */
      pcrs?: number[]
      /**
       * Unwrap over a TCTI without an encrypted session (`mssim:`, `tabrmd:`): the data key
       * crosses the bus in clear. Refused unless set (env `DIGICAP_ALLOW_UNENCRYPTED_TPM=1`).
       */
      allowUnencryptedTransport?: boolean
      /**
       * Pin a new wrapping key without proving it sits in a genuine TPM (ADR 0097: no EK
       * certificate, or no makers' roots in `keyguard.ekRoots`): recorded and shown as
       * UNVERIFIED TPM. `--allow-unverified-tpm`, env `DIGICAP_ALLOW_UNVERIFIED_TPM=1`.
       */
      allowUnverifiedTpm?: boolean
    }
  | { kind: 'software'; keyFile: string; allowInsecure: boolean }

export interface OwnerNodeConfig {
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
  /**
   * The verifier committee (ADR 0033, 0039): with the AttestationHub named, the keyguard's
   * chain path releases an `attested()` capsule's key only once the committee's "before"
   * verdict is a pass on chain (instead of challenging the executor itself).
   */
  committee?: CommitteeConfig
  /** The node software's signed release (what `verify-install` checks before `serve`). */
  release?: ReleaseConfig
}

/** The release `verify-install` checks, pinned at `init` (env overrides: see the README). */
export interface ReleaseConfig {
  /** Absolute path of the signed release manifest. */
  manifest?: string
  /** The release public key (Ed25519, 64 hex digits), pinned at init. */
  key?: string
  /** The install root the manifest lists. Default: the installed app's folder. */
  root?: string
  /** The PCR `verify-install --measure` extends the manifest digest into. Default 15. */
  pcr?: number
}

export interface KeyguardConfig {
  /** Blocks a grant must be buried under. Default 0 on a dev chain (31337, 1337), else 3. */
  confirmations?: number
  /**
   * `finalized` / `safe`: a grant counts only once its block is also at or below the chain's
   * block of that tag, which its consensus will not reorg; `latest`: `confirmations` alone.
   * Default `latest` on a dev chain, else `finalized` (keyguard ADR 0082).
   */
  finality?: 'latest' | 'safe' | 'finalized'
  /** Answer signed AccessRequests directly over libp2p (fast path). Default true. */
  fastPath?: boolean
  /** Grant watcher poll period, ms. Default 1000. */
  pollIntervalMs?: number
  /**
   * A PEM file of the TPM makers' CA certificates: an executor's attestation record is trusted
   * only if its EK certificate was issued by one of them (ADR 0069). Default none: the EK is
   * whatever key the executor registered.
   */
  ekRoots?: string
}

export interface CommitteeConfig {
  /** The AttestationHub (`deployDigicap` records it; env `DIGICAP_ATTESTATION_HUB`). */
  attestationHub: string
  /** How often a grant held for the verdict reads the hub again, ms. Default 2000. */
  verdictPollMs?: number
}

/** Confirmations `serve` uses: the config's, else 0 on a dev chain and 3 elsewhere. */
export function confirmationsFor(config: OwnerNodeConfig): number {
  return config.keyguard?.confirmations ?? (DEV_CHAINS.has(config.chainId) ? 0 : 3)
}

/**
 * Finality `serve` uses: the config's, else `latest` (`confirmations` alone). `finalized` is
 * opt-in: a grant is only served before it expires (the AccessController's `grantWindow`, 600 s
 * by default), and Ethereum's finalized block trails the head by 13-19 minutes, so there every
 * chain-path grant would expire unserved (keyguard ADR 0082, amendment).
 */
export function finalityFor(config: OwnerNodeConfig): 'latest' | 'safe' | 'finalized' {
  return config.keyguard?.finality ?? 'latest'
}

const DEV_CHAINS = new Set([31337, 1337])

/** Files and folders inside the data folder. */
export function ownerNodePaths(dataDir: string) {
  return {
    config: join(dataDir, 'config.json'),
    owner: join(dataDir, 'owner.json'),
    /** Held while the owner account sends transactions (see `ownerTransactions`). */
    ownerLock: join(dataDir, 'owner-tx.lock'),
    keys: join(dataDir, 'keys'),
    ipfs: join(dataDir, 'ipfs'),
    capsules: join(dataDir, 'capsules'),
    deployments: join(dataDir, 'deployments'),
    /** Compiled policies by source (see `cachedPolicyCompiler`). */
    policyCache: join(dataDir, 'policy-cache'),
    softwareKey: join(dataDir, 'sealer.pem'),
    serve: join(dataDir, 'serve.json'),
    keyguard: join(dataDir, 'keyguard'),
    journal: join(dataDir, 'keyguard', 'journal'),
  }
}

export const DEFAULT_TCTI = 'device:/dev/tpmrm0'
export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/4001']

const LIST = { type: 'list' } as const
const COUNT = { type: 'number', optional: true } as const

/** The config's fields: file key, type, environment variable (the sealer is checked apart). */
export const OWNER_NODE_CONFIG = defineConfig<OwnerNodeConfig>('pi-node', {
  ...CHAIN_CONFIG_FIELDS,
  listen: { ...LIST, env: 'DIGICAP_LISTEN' },
  bootstrap: { ...LIST, env: 'DIGICAP_BOOTSTRAP' },
  announce: { ...LIST, env: 'DIGICAP_ANNOUNCE', optional: true },
  rpcUrls: { ...LIST, env: 'DIGICAP_RPC_URLS', optional: true },
  quorum: { ...COUNT, min: 1 },
  startBlock: COUNT,
  'keyguard.confirmations': { ...COUNT, env: 'DIGICAP_CONFIRMATIONS' },
  'keyguard.finality': {
    type: 'string',
    optional: true,
    choices: ['latest', 'safe', 'finalized'],
    env: 'DIGICAP_FINALITY',
  },
  'keyguard.pollIntervalMs': { ...COUNT, min: 10 },
  'keyguard.fastPath': { type: 'boolean', optional: true },
  'keyguard.ekRoots': { type: 'string', optional: true, env: 'DIGICAP_EK_ROOTS' },
  'committee.attestationHub': {
    type: 'string',
    optional: true,
    pattern: /^0x[0-9a-fA-F]{40}$/,
    env: 'DIGICAP_ATTESTATION_HUB',
  },
  'committee.verdictPollMs': { ...COUNT, min: 10, env: 'DIGICAP_COMMITTEE_POLL_MS' },
  'release.manifest': { type: 'string', optional: true, env: 'DIGICAP_RELEASE_MANIFEST' },
  'release.key': { type: 'string', optional: true, env: 'DIGICAP_RELEASE_KEY' },
  'release.root': { type: 'string', optional: true, env: 'DIGICAP_RELEASE_ROOT' },
  // The OS PCRs: static (16 and 23 are resettable), extendable from locality 0 (17–22 are not).
  'release.pcr': { ...COUNT, choices: [8, 9, 10, 11, 12, 13, 14, 15], env: 'DIGICAP_RELEASE_PCR' },
})

/** The sealer of a config: a tagged union the schema leaves to this check. */
function checkSealer(c: OwnerNodeConfig, file: string): OwnerNodeConfig {
  const s = c.sealer as unknown as Record<string, unknown> | undefined
  const pcrs = s?.pcrs
  const pcrsOk =
    pcrs === undefined ||
    (Array.isArray(pcrs) &&
      pcrs.length > 0 &&
      pcrs.every((p) => Number.isInteger(p) && (p as number) >= 0 && (p as number) <= 23))
  if (!pcrsOk) configFieldError('pi-node')('sealer.pcrs', file)
  const ok =
    s?.kind === 'tpm2'
      ? typeof s.tcti === 'string' && s.tcti.length > 0
      : s?.kind === 'software' &&
        typeof s.keyFile === 'string' &&
        typeof s.allowInsecure === 'boolean'
  if (!ok) configFieldError('pi-node')(s?.kind === 'tpm2' ? 'sealer.tcti' : 'sealer', file)
  return c
}

/**
 * Reads `<dataDir>/config.json` and applies the environment: the fields' variables of
 * {@link OWNER_NODE_CONFIG} (`DIGICAP_RPC_URL`, `DIGICAP_LISTEN`, `DIGICAP_BOOTSTRAP`,
 * `DIGICAP_ANNOUNCE`, `DIGICAP_RPC_URLS`, `DIGICAP_CONFIRMATIONS`) and the sealer's
 * (`DIGICAP_SEALER=tpm2|software`, `DIGICAP_TCTI`, `DIGICAP_ALLOW_INSECURE_SEALER=1`).
 *
 * @throws {NotInitialisedError} if there is no config file.
 * @throws {ConfigError} if it is malformed, or a variable is; `data-dir-writable` /
 *   `data-dir-owner` when the folder or a parent can be changed by another user (ADR 0089).
 */
export async function loadOwnerNodeConfig(
  dataDir: string,
  env: NodeJS.ProcessEnv = {},
): Promise<OwnerNodeConfig> {
  const file = ownerNodePaths(dataDir).config
  // Before reading anything from it: a folder others can write into may hold their config.
  await checkDataDir(dataDir)
  const onDisk = checkSealer(await OWNER_NODE_CONFIG.load(file, dataDir), file)
  return applyOwnerNodeEnv({ ...onDisk, dataDir }, env)
}

/** Applies the environment overrides to a config. */
export function applyOwnerNodeEnv(
  config: OwnerNodeConfig,
  env: NodeJS.ProcessEnv,
): OwnerNodeConfig {
  const out: OwnerNodeConfig = OWNER_NODE_CONFIG.resolve({ file: config, env })
  // A committee section names its hub: a poll period alone would turn on nothing.
  if (out.committee !== undefined && out.committee.attestationHub === undefined)
    configFieldError('pi-node')('committee.attestationHub', ownerNodePaths(config.dataDir).config)
  const kind = env.DIGICAP_SEALER
  if (kind !== undefined && kind !== '' && kind !== 'tpm2' && kind !== 'software') {
    throw new ConfigError('DIGICAP_SEALER must be tpm2 or software', { details: { value: kind } })
  }
  if (kind === 'software' && out.sealer.kind !== 'software') {
    out.sealer = {
      kind: 'software',
      keyFile: ownerNodePaths(config.dataDir).softwareKey,
      allowInsecure: false,
    }
  } else if (kind === 'tpm2' && out.sealer.kind !== 'tpm2') {
    out.sealer = { kind: 'tpm2', tcti: DEFAULT_TCTI }
  }
  if (env.DIGICAP_TCTI && out.sealer.kind === 'tpm2')
    out.sealer = { ...out.sealer, tcti: env.DIGICAP_TCTI }
  if (env.DIGICAP_ALLOW_UNENCRYPTED_TPM === '1' && out.sealer.kind === 'tpm2') {
    out.sealer = { ...out.sealer, allowUnencryptedTransport: true }
  }
  if (env.DIGICAP_ALLOW_UNVERIFIED_TPM === '1' && out.sealer.kind === 'tpm2') {
    out.sealer = { ...out.sealer, allowUnverifiedTpm: true }
  }
  if (env.DIGICAP_ALLOW_INSECURE_SEALER === '1' && out.sealer.kind === 'software') {
    out.sealer = { ...out.sealer, allowInsecure: true }
  }
  return out
}

/** Saves the config (without env overrides applied: pass the one read from disk). */
export async function saveOwnerNodeConfig(config: OwnerNodeConfig): Promise<void> {
  await writeJsonAtomic(ownerNodePaths(config.dataDir).config, config)
}

/** The sealer a user picks (flags, environment); see {@link sealerConfigOf}. */
export interface SealerChoice {
  kind?: string | undefined
  tcti?: string | undefined
  allowInsecure: boolean
  /** tpm2 only: create the wrapping key PCR-bound to these PCRs. */
  pcrs?: number[] | undefined
  /** tpm2 only: pin a key without checking the TPM's EK certificate (ADR 0097). */
  allowUnverifiedTpm?: boolean | undefined
}

/**
 * The sealer `--sealer`/`--tcti`/`--allow-insecure-sealer` ask for; the environment
 * (`DIGICAP_SEALER`, `DIGICAP_TCTI`) too, unless a config is in place (`keep`).
 * `DIGICAP_ALLOW_INSECURE_SEALER=1` always counts.
 */
export function sealerChoiceOf(
  flags: {
    sealer?: string | undefined
    tcti?: string | undefined
    'allow-insecure-sealer': boolean
    'allow-unverified-tpm'?: boolean | undefined
  },
  env: NodeJS.ProcessEnv,
  keep = false,
): SealerChoice {
  return {
    kind: flags.sealer ?? (keep ? undefined : env.DIGICAP_SEALER),
    tcti: flags.tcti ?? (keep ? undefined : env.DIGICAP_TCTI),
    allowInsecure: flags['allow-insecure-sealer'] || env.DIGICAP_ALLOW_INSECURE_SEALER === '1',
    ...(flags['allow-unverified-tpm'] === true || env.DIGICAP_ALLOW_UNVERIFIED_TPM === '1'
      ? { allowUnverifiedTpm: true }
      : {}),
  }
}

/**
 * The sealer config a choice asks for. With a `fallback` (the config in place), no kind and no
 * TCTI mean "keep the fallback" (undefined).
 * @throws {UsageError} for the software sealer without `allowInsecure`, or an unknown kind.
 */
export function sealerConfigOf(
  choice: SealerChoice,
  dataDir: string,
  fallback?: SealerConfig,
): SealerConfig | undefined {
  const { kind, tcti, pcrs } = choice
  const unverified = choice.allowUnverifiedTpm === true
  if (kind === undefined && tcti === undefined && pcrs === undefined && fallback) {
    // Only --allow-unverified-tpm: the config in place, with it (recover onto this TPM).
    const add = unverified && fallback.kind === 'tpm2' && fallback.allowUnverifiedTpm !== true
    return add ? { ...fallback, allowUnverifiedTpm: true } : undefined
  }
  const k = kind ?? fallback?.kind ?? 'tpm2'
  if (k === 'tpm2') {
    const keep = fallback?.kind === 'tpm2' ? fallback : undefined
    const bound = pcrs ?? keep?.pcrs
    return {
      kind: 'tpm2',
      tcti: tcti ?? keep?.tcti ?? DEFAULT_TCTI,
      ...(bound === undefined ? {} : { pcrs: bound }),
      ...(unverified || keep?.allowUnverifiedTpm === true ? { allowUnverifiedTpm: true } : {}),
    }
  }
  if (pcrs !== undefined) {
    throw new UsageError('A PCR policy needs the tpm2 sealer', { details: { sealer: k } })
  }
  if (k !== 'software') {
    throw new UsageError('--sealer must be tpm2 or software', { details: { value: k } })
  }
  if (!choice.allowInsecure) {
    throw new UsageError('The software sealer keeps its key in a file and is refused by default', {
      hint: 'Use a TPM, or pass --allow-insecure-sealer if you accept the risk (tests, demos).',
    })
  }
  return { kind: 'software', keyFile: ownerNodePaths(dataDir).softwareKey, allowInsecure: true }
}
