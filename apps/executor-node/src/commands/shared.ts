/**
 * What several executor-node commands share: the global flags, the `command` declarer and
 * the result printer. Only light modules load here (helia, libp2p, ethers and the sandboxes
 * load inside the handlers), so `--help` and `--version` start fast.
 */
import { type CommandContext, commandsWith, listFlag, valueFlag } from '@digicap/cli-kit'
import { LOG_LEVELS, type LogLevel, type OpsLogger, processLogger } from '@digicap/ops/logger'
import { resolveDataDir } from '../data-dir.ts'

export const GLOBAL_FLAGS = {
  'data-dir': valueFlag(
    '<dir>',
    'data folder (env DIGICAP_DATA_DIR; default ~/.digicap/executor-node)',
  ),
  listen: listFlag('<maddr>', 'override the listen addresses'),
  'log-level': valueFlag(
    '<level>',
    'lowest log level written (env DIGICAP_LOG_LEVEL; default info)',
    {
      choices: LOG_LEVELS,
      env: 'DIGICAP_LOG_LEVEL',
    },
  ),
}

/** Declares an executor-node command (its handler also sees the global flags). */
export const command = commandsWith(GLOBAL_FLAGS)

type Ctx = CommandContext<
  {
    'data-dir': string | undefined
    listen: string[] | undefined
    'log-level': LogLevel | undefined
  },
  unknown
>

/** The data folder: --data-dir, then DIGICAP_DATA_DIR, then ~/.digicap/executor-node. */
export const dataDirOf = (ctx: Ctx): string => resolveDataDir(ctx.flags['data-dir'], ctx.env)

/** `{ listen }` when --listen was given, for `createExecutorNode`. */
export const listenOf = (ctx: Ctx): { listen?: string[] } =>
  ctx.flags.listen ? { listen: ctx.flags.listen } : {}

/**
 * The command's logger (`@digicap/ops`): JSON lines on stdout under systemd, readable lines on
 * a terminal's stderr, JSON lines on a piped stderr; at --log-level (env DIGICAP_LOG_LEVEL).
 */
export const loggerOf = (ctx: Ctx): OpsLogger =>
  processLogger(ctx.io, ctx.flags['log-level'] ?? 'info', { app: ctx.app })
