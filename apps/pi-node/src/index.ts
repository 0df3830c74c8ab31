/**
 * @packageDocumentation
 *
 * `@digicap/pi-node` — the `pi-node` command line: the capsule owner's node on a Raspberry Pi
 * with a TPM. The node itself is a library, `@digicap/owner/node` (`createOwnerNode`,
 * `initOwnerNode`, `recoverOwnerNode`, the keyguard daemon); this package declares the
 * commands, turns flags and the data folder's config into its calls and prints the outcome.
 *
 * @example
 * ```ts
 * import { runCli } from '@digicap/pi-node'
 *
 * process.exitCode = await runCli(['status', '--json'], { ...process, env: process.env })
 * ```
 */
export { resolveDataDir } from './config.ts'
export type { CliIo } from './main.ts'
export { PI_NODE_CLI, runCli } from './main.ts'
