/**
 * What several pi-node commands share: the global flags, the `command` declarer, and the
 * parsing of inputs that more than one command takes. Only light modules load here (the
 * owner node, `@digicap/owner/node`, loads inside the handlers), so `--help` starts fast.
 */
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type CommandContext,
  type CommandIo,
  commandsWith,
  switchFlag,
  valueFlag,
  warnOnce,
} from '@digicap/cli-kit'
import {
  LOG_LEVELS,
  type LogLevel,
  type OpsLogger,
  processLogger,
  processLogTarget,
} from '@digicap/ops/logger'
import type { OwnerNode, OwnerNodeConfig } from '@digicap/owner/node'
import { loadConfig, resolveDataDir } from '../config.ts'

export const GLOBAL_FLAGS = {
  'data-dir': valueFlag('<dir>', 'data folder (env DIGICAP_DATA_DIR; default ~/.digicap/pi-node)'),
  'log-level': valueFlag(
    '<level>',
    'lowest log level written (env DIGICAP_LOG_LEVEL; default info)',
    {
      choices: LOG_LEVELS,
      env: 'DIGICAP_LOG_LEVEL',
    },
  ),
} as const

/** Declares a pi-node command (its handler also sees the global flags). */
export const command = commandsWith(GLOBAL_FLAGS)

type Ctx = CommandContext<
  { 'data-dir': string | undefined; 'log-level': LogLevel | undefined },
  unknown
>

/** The install root a release manifest lists by default: the folder above this app's `dist/` or `src/`. */
export const appRoot = (): string => resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The data folder: --data-dir, then DIGICAP_DATA_DIR, then ~/.digicap/pi-node. */
export const dataDirOf = (ctx: Ctx): string => resolveDataDir(ctx.flags['data-dir'], ctx.env)

/**
 * The command's logger (`@digicap/ops`): JSON lines on stdout under systemd, readable lines on
 * a terminal's stderr, JSON lines on a piped stderr; at --log-level (env DIGICAP_LOG_LEVEL).
 * A sealer's insecurity warning is printed once per command.
 */
export function commandLogger(io: CommandIo, level?: LogLevel): OpsLogger {
  const fromEnv = io.env.DIGICAP_LOG_LEVEL as LogLevel | undefined
  const log = processLogger(
    io,
    level ?? (LOG_LEVELS.includes(fromEnv as LogLevel) ? fromEnv : 'info'),
  )
  // Under systemd every line the journal gets is a JSON log line, the warning too.
  const { systemd } = processLogTarget(io)
  return {
    ...log,
    warn: (m, f) =>
      m.startsWith('INSECURE')
        ? warnOnce(io, m, systemd ? (w) => log.warn(w, f) : undefined)
        : log.warn(m, f),
  }
}

/** The logger of a command with the global flags. */
export const loggerOf = (ctx: Ctx): OpsLogger => commandLogger(ctx.io, ctx.flags['log-level'])

/** The data folder's config, with the environment. */
export function configOf(ctx: Ctx): Promise<OwnerNodeConfig> {
  return loadConfig(dataDirOf(ctx), ctx.env)
}

/** Builds the owner node from `config` (default: the data folder's, with the environment). */
export async function openPiNode(ctx: Ctx, config?: OwnerNodeConfig): Promise<OwnerNode> {
  const { createOwnerNode } = await import('@digicap/owner/node')
  return createOwnerNode(config ?? (await configOf(ctx)), { logger: loggerOf(ctx) })
}

/** The --sealer/--tcti/--allow-insecure-sealer flags of init and recover. */
export const SEALER_FLAGS = {
  sealer: valueFlag('tpm2|software', 'sealer kind (env DIGICAP_SEALER; default tpm2)', {
    choices: ['tpm2', 'software'],
  }),
  tcti: valueFlag('<tcti>', 'TPM (env DIGICAP_TCTI; default device:/dev/tpmrm0)'),
  'allow-insecure-sealer': switchFlag(
    'required for --sealer software (env DIGICAP_ALLOW_INSECURE_SEALER=1)',
  ),
  'allow-unverified-tpm': switchFlag(
    'pin the TPM key with no EK check (DIGICAP_ALLOW_UNVERIFIED_TPM=1)',
  ),
}
