/**
 * @packageDocumentation
 *
 * `@digicap/cli-kit` — what the Digicap apps' command lines share, so `pi-node` and
 * `executor-node` print, fail and exit the same way. Private to this repository.
 *
 * - `--json`: one JSON document on stdout ({@link jsonReplacer} writes bigints as strings and
 *   bytes as hex); human text and progress on stderr.
 * - Errors print as `error[CODE]: message`, then details and a hint; exit codes are
 *   {@link EXIT}: 0 ok, 1 failure, 2 bad command line.
 *
 * @example
 * ```ts
 * import { EXIT, printError, UsageError } from '@digicap/cli-kit'
 *
 * try { throw new UsageError('unknown flag --colour', { hint: 'see --help' }) }
 * catch (err) { process.exitCode = printError({ stdout: process.stdout, stderr: process.stderr }, err, false) }
 * ```
 */

export { rpcChainId } from './chain.ts'
export { type ChildOutput, collectOutput } from './child-output.ts'
export { type ConfigFieldError, configFieldError, readConfigJson } from './config/file.ts'
export {
  CHAIN_CONFIG_FIELDS,
  type ConfigField,
  type ConfigFields,
  type ConfigFieldType,
  type ConfigSchema,
  type ConfigSources,
  type ConfigValue,
  checkChainConfigFields,
  defineConfig,
} from './config/schema.ts'
export {
  AlreadyInitialisedError,
  ChainUnreachableError,
  ConfigError,
  InsufficientFundsError,
  LockTimeoutError,
  NotInitialisedError,
  UsageError,
} from './errors.ts'
export { removeStaleTemps, writeFileAtomic, writeJsonAtomic } from './files.ts'
export { type FileLockOptions, processAlive, withFileLock } from './lock.ts'
export { EXIT, type Io, jsonReplacer, printError, progressReporter } from './output.ts'
export {
  createReleaseManifest,
  digestTree,
  InstallTamperedError,
  RELEASE_MANIFEST_KIND,
  type ReleaseManifest,
  releasePublicKey,
  verifyInstall,
} from './release-manifest.ts'
export { definedFields } from './shell/defined.ts'
export { type FlagExtras, listFlag, switchFlag, valueFlag } from './shell/flags.ts'
export { commandHelp, programHelp } from './shell/help.ts'
export {
  contractFlags,
  contractsOf,
  keyBindingFlags,
  mnemonicBanner,
  releaseFlags,
} from './shell/node-flags.ts'
export { type ParsedCommand, parseCommand } from './shell/parse.ts'
export { commandsWith, runCommandLine } from './shell/run.ts'
export { readStdinText } from './shell/stdin.ts'
export type {
  ArgSpec,
  ArgValues,
  CliSpec,
  Command,
  CommandContext,
  CommandIo,
  CommandOutcome,
  CommandSpec,
  FlagSpec,
  Flags,
  FlagValue,
  FlagValues,
} from './shell/types.ts'
export { address, pcrList, positiveEther, positiveInteger, wholeNumber } from './shell/values.ts'
export { printVersion, VERSION_FLAGS } from './version.ts'
export { warnOnce } from './warnings.ts'
