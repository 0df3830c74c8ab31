/** The `executor-node` command line: its commands, one file each under `commands/`. */
import { type CommandIo, runCommandLine } from '@digicap/cli-kit'
import { init } from './commands/init.ts'
import { receive } from './commands/receive.ts'
import { register } from './commands/register.ts'
import { registry } from './commands/registry.ts'
import { resetRunPcrCommand } from './commands/reset-run-pcr.ts'
import { run } from './commands/run.ts'
import { serve } from './commands/serve.ts'
import { GLOBAL_FLAGS } from './commands/shared.ts'

export interface CliIo extends CommandIo {
  /** Resolves when the daemon should stop (SIGINT/SIGTERM in the binary). */
  waitForStop: () => Promise<string>
}

/** Runs one command line; returns the exit code. */
export const runCli = (argv: string[], io: CliIo): Promise<number> =>
  runCommandLine(
    {
      name: 'executor-node',
      title: "the Digicap executor's node",
      packageJson: new URL('../package.json', import.meta.url),
      globalFlags: GLOBAL_FLAGS,
      commands: [init, register, run, serve, receive, resetRunPcrCommand, registry],
    },
    argv,
    io,
  )
