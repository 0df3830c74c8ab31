/**
 * What several pi-node commands share: the global flags, the `command` declarer, and the
 * parsing of inputs that more than one command takes. Only light modules load here (the
 * pi-node library loads inside the handlers), so `--help` starts fast.
 */
import type { Receiver } from '@digicap/capsule-core'
import {
  type CommandContext,
  type CommandIo,
  commandsWith,
  jsonReplacer,
  switchFlag,
  UsageError,
  valueFlag,
  warnOnce,
} from '@digicap/cli-kit'
import type { KeyguardStatus, Logger } from '@digicap/keyguard'
import {
  DEFAULT_TCTI,
  loadConfig,
  type PiNodeConfig,
  piNodePaths,
  resolveDataDir,
  type SealerConfig,
} from '../config.ts'
import type { PiNode } from '../pi-node.ts'

export const GLOBAL_FLAGS = {
  'data-dir': valueFlag('<dir>', 'data folder (env DIGICAP_DATA_DIR; default ~/.digicap/pi-node)'),
} as const

/** Declares a pi-node command (its handler also sees the global flags). */
export const command = commandsWith(GLOBAL_FLAGS)

type Ctx = CommandContext<{ 'data-dir': string | undefined }, unknown>

/** The data folder: --data-dir, then DIGICAP_DATA_DIR, then ~/.digicap/pi-node. */
export const dataDirOf = (ctx: Ctx): string => resolveDataDir(ctx.flags['data-dir'], ctx.env)

/** Logs as JSON lines on stderr; a sealer's insecurity warning is printed once per command. */
export function stderrLogger(io: CommandIo): Logger {
  const write = (level: string, message: string, fields?: Record<string, unknown>) =>
    io.stderr.write(`${JSON.stringify({ level, message, ...fields }, jsonReplacer)}\n`)
  return {
    info: (m, f) => write('info', m, f),
    warn: (m, f) => (m.startsWith('INSECURE') ? warnOnce(io, m) : write('warn', m, f)),
  }
}

/** Builds the pi-node from `config` (default: the data folder's, with the environment). */
export async function openPiNode(ctx: Ctx, config?: PiNodeConfig): Promise<PiNode> {
  config ??= await loadConfig(dataDirOf(ctx), ctx.env)
  const { createPiNode } = await import('../pi-node.ts')
  return createPiNode(config, { logger: stderrLogger(ctx.io) })
}

/** The --sealer/--tcti/--allow-insecure-sealer flags of init and recover. */
export const SEALER_FLAGS = {
  sealer: valueFlag('tpm2|software', 'sealer kind (env DIGICAP_SEALER; default tpm2)', {
    choices: ['tpm2', 'software'],
  }),
  tcti: valueFlag('<tcti>', `TPM (env DIGICAP_TCTI; default ${DEFAULT_TCTI})`),
  'allow-insecure-sealer': switchFlag(
    'required for --sealer software (env DIGICAP_ALLOW_INSECURE_SEALER=1)',
  ),
}

/**
 * The sealer the flags and environment ask for. With a `fallback` (the config in place), the
 * environment is not read and no flag means "keep the fallback" (undefined).
 */
export function sealerFromFlags(
  flags: {
    sealer?: string | undefined
    tcti?: string | undefined
    'allow-insecure-sealer': boolean
  },
  env: NodeJS.ProcessEnv,
  dataDir: string,
  fallback?: SealerConfig,
): SealerConfig | undefined {
  const kind = flags.sealer ?? (fallback ? undefined : env.DIGICAP_SEALER)
  const tcti = flags.tcti ?? (fallback ? undefined : env.DIGICAP_TCTI)
  const allow = flags['allow-insecure-sealer'] || env.DIGICAP_ALLOW_INSECURE_SEALER === '1'
  if (kind === undefined && tcti === undefined && fallback) return undefined
  const k = kind ?? fallback?.kind ?? 'tpm2'
  if (k === 'tpm2') {
    return {
      kind: 'tpm2',
      tcti: tcti ?? (fallback?.kind === 'tpm2' ? fallback.tcti : DEFAULT_TCTI),
    }
  }
  if (k === 'software') {
    if (!allow) {
      throw new UsageError(
        'The software sealer keeps its key in a file and is refused by default',
        {
          hint: 'Use a TPM, or pass --allow-insecure-sealer if you accept the risk (tests, demos).',
        },
      )
    }
    return { kind: 'software', keyFile: piNodePaths(dataDir).softwareKey, allowInsecure: true }
  }
  throw new UsageError('--sealer must be tpm2 or software', { details: { value: k } })
}

/** The three contract addresses, when all are given. */
export function contractsOf(flags: {
  'capsule-registry'?: string | undefined
  'node-registry'?: string | undefined
  'access-controller'?: string | undefined
}): PiNodeConfig['contracts'] | undefined {
  const { 'capsule-registry': c, 'node-registry': n, 'access-controller': a } = flags
  return c && n && a ? { capsuleRegistry: c, nodeRegistry: n, accessController: a } : undefined
}

/** A --receiver value: `<x25519 public key hex>[@peerId]`. */
export function parseReceiver(text: string): Receiver {
  const [key, peerId, ...rest] = text.split('@')
  if (rest.length > 0 || !key || !/^(0x)?[0-9a-fA-F]{64}$/.test(key)) {
    throw new UsageError('--receiver must be <x25519 public key hex>[@peerId]', {
      details: { value: text.slice(0, 100) },
    })
  }
  return {
    publicKey: Uint8Array.from(Buffer.from(key.replace(/^0x/, ''), 'hex')),
    ...(peerId ? { peerId } : {}),
  }
}

/** The keyguard's lines of `status` and `serve`. */
export function keyguardLines(kg: KeyguardStatus, updatedAt?: string): string {
  return (
    `  keyguard    ${kg.running ? 'running' : 'stopped'}, chain ${kg.chain.chainId} head ${kg.chain.head ?? '?'} cursor ${kg.chain.cursor?.number ?? '-'} (${kg.chain.confirmations} confirmations)` +
    `${updatedAt ? `, as of ${updatedAt}` : ''}\n` +
    `              releases pending ${kg.releases.pending}, in flight ${kg.releases.inFlight}; released ${kg.counters.released ?? 0}, failed ${kg.counters['release-failed'] ?? 0}\n` +
    `              fast path ${kg.fastPath.enabled ? `on (audit pending ${kg.fastPath.auditPending})` : 'off'}\n`
  )
}
