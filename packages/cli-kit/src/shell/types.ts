/**
 * A command line declared once: each command names its flags (type, default, env, help),
 * its positional arguments and its handler; the shell derives parsing, `--help`, `--json`,
 * `--version` and exit codes from that one declaration.
 */
import type { Io } from '../output.ts'

/** One flag of a command (or of every command, as a global flag). */
export interface FlagSpec {
  /** `string` takes a value (`--rpc-url <url>`, `--rpc-url=<url>`); `boolean` is a switch. */
  type: 'string' | 'boolean'
  /** Repeatable: every value, in order. Without it, a flag given twice is a usage error. */
  multiple?: boolean
  /** One-letter alias (`h` for `-h`). */
  short?: string
  /** The value's placeholder in the help, e.g. `<url>` (default `<value>`). */
  value?: string
  /** One line (or several, joined by `\n`) for the help. */
  help: string
  /** An environment variable read when the flag is absent (string flags). */
  env?: string
  /** The text used when the flag (and its env) is absent; parsed like a given value. */
  default?: string
  /** The only texts allowed; the help shows them as the value (`--runtime data|wasi`). */
  choices?: readonly string[]
  /**
   * Turns the text into the value the handler gets; throws a `UsageError` for bad text
   * (see `wholeNumber`, `positiveInteger`, `address`).
   */
  parse?: (text: string, flag: string) => unknown
  /** A heading the help lists this flag under (default `Options`). */
  group?: string
}

export type Flags = Record<string, FlagSpec>

/** A positional argument. */
export interface ArgSpec {
  name: string
  help: string
  optional?: boolean
}

type Parsed<F> = F extends { choices: readonly (infer C)[] }
  ? C
  : F extends { parse: (text: string, flag: string) => infer T }
    ? T
    : string
type Absent<F> = F extends { default: string } ? never : undefined

/** The value a handler gets for flag `F`: booleans are `false` when absent. */
export type FlagValue<F> = F extends { type: 'boolean' }
  ? boolean
  : F extends { multiple: true }
    ? Parsed<F>[] | Absent<F>
    : Parsed<F> | Absent<F>

export type FlagValues<F extends Flags> = { -readonly [K in keyof F]: FlagValue<F[K]> }

export type ArgValues<A extends readonly ArgSpec[]> = {
  [P in A[number] as P['name']]: P extends { optional: true } ? string | undefined : string
}

/** The streams and environment a command runs with (the process's, or a test's). */
export interface CommandIo extends Io {
  env: NodeJS.ProcessEnv
  stdin?: AsyncIterable<Buffer | string>
  /** Resolves when a daemon should stop (SIGINT/SIGTERM in a binary). */
  waitForStop?: () => Promise<string>
}

/** What a handler is given. */
export interface CommandContext<V, P> {
  /** The program's name, e.g. `pi-node`. */
  app: string
  command: string
  flags: V
  args: P
  /** `--json` was given: one JSON document (or JSON lines) on stdout. */
  json: boolean
  io: CommandIo
  env: NodeJS.ProcessEnv
  /** A command's outcome: `{ ok: true, command, ...doc }` under `--json`, else `human`. */
  result(doc: Record<string, unknown>, human: string): void
  /** One event of a long-running command: `doc` as one JSON line under `--json`, else `human`. */
  event(doc: Record<string, unknown>, human: string): void
  /** Resolves when the command should stop; never, when the caller gave no waiter. */
  waitForStop(): Promise<string>
}

/** What a command returns: an exit code (`EXIT`), or nothing for `EXIT.ok`. */
// biome-ignore lint/suspicious/noConfusingVoidType: a handler that returns nothing succeeded
export type CommandOutcome = Promise<number | void>

/** A command, declared once. */
export interface CommandSpec<F extends Flags, A extends readonly ArgSpec[], G extends Flags> {
  name: string
  /** One line in the program's help. */
  summary: string
  /** The command's own help, after its usage line. */
  description?: string
  /** What the usage line shows after `<app> <name>` (default: the arguments, then `[options]`). */
  usage?: string
  flags?: F
  args?: A
  /** Text after the options in the command's help (examples, grammar). */
  epilog?: string
  run(ctx: CommandContext<FlagValues<F> & FlagValues<G>, ArgValues<A>>): CommandOutcome
}

/** A command with its types erased, as the shell holds it. */
export interface Command {
  name: string
  summary: string
  description?: string
  usage?: string
  flags?: Flags
  args?: readonly ArgSpec[]
  epilog?: string
  run(
    ctx: CommandContext<Record<string, unknown>, Record<string, string | undefined>>,
  ): CommandOutcome
}

/** A program: its name, its version source, its global flags and its commands. */
export interface CliSpec {
  name: string
  /** One line after the name at the top of the help. */
  title: string
  /** The program's package.json, for `--version`. */
  packageJson: URL
  /** Flags every command takes (`--data-dir`), besides the shell's `--json` and `--help`. */
  globalFlags?: Flags
  commands: readonly Command[]
}
