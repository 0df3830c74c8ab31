/** The help texts, derived from the declarations: the program's, and each command's. */
import type { CliSpec, Command, FlagSpec, Flags } from './types.ts'

/** The shell's own flags, listed with the program's global flags. */
export const SHELL_FLAGS: Flags = {
  json: {
    type: 'boolean',
    help: 'one JSON document on stdout (JSON lines for daemons); progress and logs on stderr',
  },
  help: { type: 'boolean', short: 'h', help: 'help (also per command: <app> <command> --help)' },
}

const VERSION_LINE = ['-V, --version', "this program's version and the Node running it"] as const

function label(name: string, f: FlagSpec): string {
  const value = f.value ?? f.choices?.join('|') ?? '<value>'
  const long = f.type === 'string' ? `--${name} ${value}` : `--${name}`
  return f.short ? `-${f.short}, ${long}` : long
}

function text(f: FlagSpec): string {
  const notes = [
    ...(f.env ? [`env ${f.env}`] : []),
    ...(f.default !== undefined ? [`default ${f.default}`] : []),
    ...(f.multiple ? ['repeatable'] : []),
  ]
  return notes.length > 0 ? `${f.help} (${notes.join('; ')})` : f.help
}

type Row = readonly [string, string]

/** The label column's width for `rows`: the longest label (up to 30) and two spaces. */
const widthOf = (rows: Row[]): number =>
  Math.min(30, Math.max(0, ...rows.map(([l]) => l.length))) + 2

/** Two columns: the labels padded to one width, continuation lines under the text. */
function table(rows: Row[], width = widthOf(rows)): string {
  const pad = ' '.repeat(width)
  return rows
    .map(([l, t]) => {
      const [first, ...rest] = t.split('\n')
      const head =
        l.length > width - 2 ? `  ${l}\n  ${pad}${first}` : `  ${l.padEnd(width)}${first}`
      return [head, ...rest.map((r) => `  ${pad}${r}`)].map((line) => line.trimEnd()).join('\n')
    })
    .join('\n')
}

function flagRows(flags: Flags): Row[] {
  return Object.entries(flags).map(([name, f]) => [label(name, f), text(f)] as const)
}

function globalRows(cli: CliSpec, app: string): Row[] {
  return [
    ...flagRows(cli.globalFlags ?? {}),
    ...flagRows(SHELL_FLAGS).map(([l, t]) => [l, t.replace('<app>', app)] as const),
    VERSION_LINE,
  ]
}

/** `<app> — <title>`, the usage line, the commands with their summaries, the global options. */
export function programHelp(cli: CliSpec): string {
  const commands = cli.commands.map((c) => [c.name, c.summary] as const)
  return `${cli.name} — ${cli.title}

Usage: ${cli.name} <command> [options]

Commands:
${table(commands)}

Global options:
${table(globalRows(cli, cli.name))}
`
}

/** The usage line's tail: the declared one, or the arguments and `[options]`. */
export function usageOf(c: Command): string {
  if (c.usage !== undefined) return c.usage
  const args = (c.args ?? []).map((a) => (a.optional ? `[<${a.name}>]` : `<${a.name}>`))
  return [...args, '[options]'].join(' ')
}

/** A command's help: usage, description, arguments, options by group, epilog, global options. */
export function commandHelp(cli: CliSpec, c: Command): string {
  const parts = [`Usage: ${cli.name} ${c.name} ${usageOf(c)}`]
  if (c.description) parts.push(c.description.trimEnd())
  const argRows = (c.args ?? []).map((a) => [`<${a.name}>`, a.help] as const)
  const groups = new Map<string, Row[]>()
  for (const [name, f] of Object.entries(c.flags ?? {})) {
    const g = f.group ?? 'Options'
    groups.set(g, [...(groups.get(g) ?? []), ...flagRows({ [name]: f })])
  }
  // One width for the arguments and every group, so the columns line up.
  const width = widthOf([...argRows, ...[...groups.values()].flat()])
  if (argRows.length > 0) parts.push(`Arguments:\n${table(argRows, width)}`)
  for (const [g, rows] of groups) parts.push(`${g}:\n${table(rows, width)}`)
  if (c.epilog) parts.push(c.epilog.trimEnd())
  parts.push(`Global options:\n${table(globalRows(cli, cli.name))}`)
  return `${parts.join('\n\n')}\n`
}
