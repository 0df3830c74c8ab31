/**
 * Strict parsing of one command's arguments against its declaration: an unknown flag, a
 * value on a switch, a missing value, a single-valued flag given twice, a missing or extra
 * positional argument are each a `UsageError` (exit 2) that says what to type instead.
 */
import { parseArgs } from 'node:util'
import { DigicapError } from '@digicap/capsule-core/light'
import { UsageError } from '../errors.ts'
import { SHELL_FLAGS, usageOf } from './help.ts'
import type { CliSpec, Command, FlagSpec, Flags } from './types.ts'
import { choice } from './values.ts'

export interface ParsedCommand {
  flags: Record<string, unknown>
  args: Record<string, string | undefined>
}

/** The flags a command takes: the program's global ones, the shell's, then its own. */
export function flagsOf(cli: CliSpec, c: Command): Flags {
  return { ...cli.globalFlags, ...SHELL_FLAGS, ...c.flags }
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        (prev[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      )
    }
    prev = row
  }
  return prev[b.length] as number
}

/** The declared flag nearest to a mistyped one, if it is a typo away. */
function nearest(flag: string, flags: Flags): string | undefined {
  const name = flag.replace(/^-+/, '').split('=')[0] as string
  let best: [string, number] | undefined
  for (const candidate of Object.keys(flags)) {
    const d = distance(name, candidate)
    if (d <= 2 && (best === undefined || d < best[1])) best = [candidate, d]
  }
  return best?.[0]
}

function parseError(cause: Error & { code?: string }, flags: Flags, helpHint: string): UsageError {
  if (cause.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = /'([^']+)'/.exec(cause.message)?.[1] ?? '?'
    const near = nearest(flag, flags)
    return new UsageError(`Unknown flag ${flag}`, {
      details: { flag },
      hint: near ? `Did you mean --${near}? ${helpHint}` : helpHint,
    })
  }
  // A value on a switch, no value after a flag that takes one, a value that looks like a flag.
  return new UsageError(cause.message.split('. ')[0] as string, { hint: helpHint })
}

function flagValue(name: string, f: FlagSpec, given: unknown, env: NodeJS.ProcessEnv): unknown {
  if (f.type === 'boolean') return given === true
  const parse = (text: string) => {
    const t = f.choices ? choice(text, name, f.choices) : text
    if (!f.parse) return t
    try {
      return f.parse(t, name)
    } catch (err) {
      // A library's reader (e.g. capsule-core's parseReceiver) refuses with its own code; on a
      // command line that is a usage error naming the flag.
      if (!(err instanceof DigicapError) || err instanceof UsageError) throw err
      throw new UsageError(`--${name}: ${err.shortMessage}`, {
        details: err.details,
        ...(err.hint ? { hint: err.hint } : {}),
      })
    }
  }
  if (f.multiple) {
    const texts =
      (given as string[] | undefined) ?? (f.default !== undefined ? [f.default] : undefined)
    return texts?.map(parse)
  }
  if (given !== undefined) return parse(given as string)
  const fromEnv = f.env !== undefined ? env[f.env] : undefined
  if (fromEnv !== undefined && fromEnv !== '') {
    try {
      return parse(fromEnv)
    } catch (err) {
      if (!(err instanceof DigicapError)) throw err
      throw new UsageError(err.shortMessage, {
        details: { ...err.details, env: f.env },
        hint: `Fix or unset ${f.env}.`,
      })
    }
  }
  return f.default !== undefined ? parse(f.default) : undefined
}

/**
 * Parses `argv` (what follows the command's name) for command `c`.
 * @throws {UsageError} for anything the declaration does not allow.
 */
export function parseCommand(
  cli: CliSpec,
  c: Command,
  argv: string[],
  env: NodeJS.ProcessEnv,
): ParsedCommand {
  const flags = flagsOf(cli, c)
  const helpHint = `See ${cli.name} ${c.name} --help.`
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(flags).map(([name, f]) => [
          name,
          {
            type: f.type,
            ...(f.multiple ? { multiple: true } : {}),
            ...(f.short ? { short: f.short } : {}),
          },
        ]),
      ),
      allowPositionals: true,
      strict: true,
      tokens: true,
    })
  } catch (cause) {
    throw parseError(cause as Error, flags, helpHint)
  }
  const seen = new Set<string>()
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== 'option' || flags[t.name]?.multiple) continue
    if (seen.has(t.name)) {
      throw new UsageError(`--${t.name} given twice`, {
        details: { flag: t.name },
        hint: `Give it once. ${helpHint}`,
      })
    }
    seen.add(t.name)
  }
  const values = parsed.values as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [name, f] of Object.entries(flags)) out[name] = flagValue(name, f, values[name], env)
  const declared = c.args ?? []
  const positionals = parsed.positionals
  if (positionals.length > declared.length) {
    throw new UsageError('Unexpected argument', {
      details: { argument: (positionals[declared.length] as string).slice(0, 100) },
      hint: `Usage: ${cli.name} ${c.name} ${usageOf(c)}`,
    })
  }
  const args: Record<string, string | undefined> = {}
  for (const [i, a] of declared.entries()) {
    const v = positionals[i]
    if (v === undefined && !a.optional) {
      throw new UsageError(`${c.name} needs <${a.name}>`, {
        hint: `Usage: ${cli.name} ${c.name} ${usageOf(c)}`,
      })
    }
    args[a.name] = v
  }
  return { flags: out, args }
}
