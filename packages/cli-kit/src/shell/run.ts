/** Runs one command line against a program's declared commands; returns the exit code. */
import { isMainThread } from 'node:worker_threads'

import { UsageError } from '../errors.ts'
import { EXIT, jsonReplacer, printError } from '../output.ts'
import { printVersion, VERSION_FLAGS } from '../version.ts'
import { commandHelp, programHelp } from './help.ts'
import { parseCommand } from './parse.ts'
import type {
  ArgSpec,
  CliSpec,
  Command,
  CommandContext,
  CommandIo,
  CommandSpec,
  Flags,
} from './types.ts'

/**
 * The `command(spec)` declarer of a program whose global flags are `globals`: handlers see
 * the values of their own flags and of the global ones, typed from the declarations.
 *
 * @example
 * ```ts
 * const command = commandsWith({ 'data-dir': { type: 'string', value: '<dir>', help: 'data folder' } })
 * export const status = command({
 *   name: 'status',
 *   summary: "show the node's state",
 *   flags: { verbose: { type: 'boolean', help: 'more' } },
 *   async run({ flags, result }) {
 *     result({ dataDir: flags['data-dir'] }, `data in ${flags['data-dir']}\n`)
 *   },
 * })
 * ```
 */
export function commandsWith<const G extends Flags>(_globals: G) {
  return <const F extends Flags = Record<never, never>, const A extends readonly ArgSpec[] = []>(
    spec: CommandSpec<F, A, G>,
  ): Command => spec as unknown as Command
}

function unknownCommand(cli: CliSpec, name: string): UsageError {
  const names = cli.commands.map((c) => c.name)
  return new UsageError('Unknown command', {
    details: { command: name.slice(0, 100) },
    hint: `Commands: ${names.join(', ')} (${cli.name} --help).`,
  })
}

function context(
  cli: CliSpec,
  c: Command,
  io: CommandIo,
  json: boolean,
  parsed: { flags: Record<string, unknown>; args: Record<string, string | undefined> },
): CommandContext<Record<string, unknown>, Record<string, string | undefined>> {
  const line = (doc: unknown) => io.stdout.write(`${JSON.stringify(doc, jsonReplacer)}\n`)
  return {
    app: cli.name,
    command: c.name,
    flags: parsed.flags,
    args: parsed.args,
    json,
    io,
    env: io.env,
    result: (doc, human) =>
      json ? line({ ok: true, command: c.name, ...doc }) : io.stdout.write(human),
    event: (doc, human) => (json ? line(doc) : io.stdout.write(human)),
    waitForStop: () => io.waitForStop?.() ?? new Promise<string>(() => {}),
  }
}

/**
 * Runs `argv` (without the node and script paths): `--help`/`-h`/`help [command]`, `--version`
 * /`-V`, or one command; any error is printed by `printError` (and as a JSON document under
 * `--json`). Returns `EXIT`: 0 ok, 1 failure, 2 bad command line (no command is one too, after
 * the help). Sets the process umask to 077 first: a node's data folder holds keys, and the
 * libraries that write into it (helia's blockstore, the deployments) follow the umask.
 */
export async function runCommandLine(cli: CliSpec, argv: string[], io: CommandIo): Promise<number> {
  if (isMainThread) process.umask(0o077) // a worker cannot change it (its process's is used)
  const json = argv.includes('--json')
  try {
    const first = argv[0]
    if (first === 'help' && argv[1] !== undefined) {
      const c = cli.commands.find((x) => x.name === argv[1])
      if (!c) throw unknownCommand(cli, argv[1])
      io.stdout.write(commandHelp(cli, c))
      return EXIT.ok
    }
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      io.stdout.write(programHelp(cli))
      return first === undefined ? EXIT.usage : EXIT.ok
    }
    if (VERSION_FLAGS.includes(first)) return printVersion(io, cli.name, cli.packageJson, json)
    const c = cli.commands.find((x) => x.name === first)
    if (!c) throw unknownCommand(cli, first)
    const rest = argv.slice(1)
    const end = rest.indexOf('--')
    const flagsPart = end < 0 ? rest : rest.slice(0, end)
    // Help wins over everything else on the line, so a mistyped command still gets its help.
    if (flagsPart.includes('--help') || flagsPart.includes('-h')) {
      io.stdout.write(commandHelp(cli, c))
      return EXIT.ok
    }
    const parsed = parseCommand(cli, c, rest, io.env)
    const code = await c.run(context(cli, c, io, json, parsed))
    return code ?? EXIT.ok
  } catch (err) {
    return printError(io, err, json)
  }
}
