/** The `pi-node` command line: its commands, one file each under `commands/`. */
import { type CliSpec, type CommandIo, runCommandLine } from '@digicap/cli-kit'
import { init } from './commands/init.ts'
import { keyPolicy } from './commands/key-policy.ts'
import { movePolicy } from './commands/move-policy.ts'
import { recover } from './commands/recover.ts'
import { seal } from './commands/seal.ts'
import { sealImage } from './commands/seal-image.ts'
import { serve } from './commands/serve.ts'
import { GLOBAL_FLAGS } from './commands/shared.ts'
import { signRelease } from './commands/sign-release.ts'
import { status } from './commands/status.ts'
import { verifyInstallCommand } from './commands/verify-install.ts'

export const PI_NODE_CLI: CliSpec = {
  name: 'pi-node',
  title: "the Digicap capsule owner's node",
  packageJson: new URL('../package.json', import.meta.url),
  globalFlags: GLOBAL_FLAGS,
  commands: [
    init,
    seal,
    sealImage,
    movePolicy,
    status,
    recover,
    serve,
    keyPolicy,
    verifyInstallCommand,
    signRelease,
  ],
}

export interface CliIo extends CommandIo {
  stdin: AsyncIterable<Buffer | string>
}

/**
 * Runs one `pi-node` command. Returns the exit code.
 *
 * @example
 * ```ts
 * process.exitCode = await runCli(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env })
 * ```
 */
export function runCli(argv: string[], io: CliIo): Promise<number> {
  return runCommandLine(PI_NODE_CLI, argv, io)
}
