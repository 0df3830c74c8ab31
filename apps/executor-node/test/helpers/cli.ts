/**
 * Running the `executor-node` CLI as its own process, as an operator would: from the sources
 * (Node 24 type stripping). By default the child gets this process's environment plus `env`;
 * `{ onlyEnv: true }` gives it only PATH, HOME and `env` (a clean operator shell).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { collectOutput } from '@digicap/cli-kit'

export const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))

// biome-ignore lint/suspicious/noExplicitAny: the daemons' JSON lines
export type JsonLine = Record<string, any>

export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

export interface CliOptions {
  /** Only PATH, HOME and `env` in the child's environment. */
  onlyEnv?: boolean
  /** Node flags before the CLI's path (e.g. `--import <hook>`). */
  nodeFlags?: string[]
}

/** Starts `executor-node <args>`; the caller reads its streams and waits for it. */
export function spawnCli(
  args: string[],
  env: Record<string, string> = {},
  options: CliOptions = {},
): ChildProcessWithoutNullStreams {
  const base = options.onlyEnv
    ? { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' }
    : process.env
  return spawn(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', ...(options.nodeFlags ?? []), CLI, ...args],
    { env: { ...base, ...env } },
  )
}

/** A long-running CLI process (serve, receive, run) whose stdout JSON lines are kept. */
export interface CliDaemon {
  child: ChildProcessWithoutNullStreams
  /** Its exit code, once it closed; rejects if it could not be started. */
  exited: Promise<number | null>
  stdout(): string
  stderr(): string
  /** The JSON lines printed so far. */
  lines(): JsonLine[]
  /** The first line matching, within `timeoutMs`; throws with the output if the child exits first. */
  line(match: (l: JsonLine) => boolean, timeoutMs?: number): Promise<JsonLine>
  /** The first line whose `event` is `event`. */
  waitFor(event: string, timeoutMs?: number): Promise<JsonLine>
  /** SIGTERM, then its exit code. */
  stop(): Promise<number | null>
}

/** Starts `executor-node <args>` and keeps its JSON lines. */
export function startCli(
  args: string[],
  env: Record<string, string> = {},
  options: CliOptions = {},
): CliDaemon {
  const child = spawnCli(args, env, options)
  const { stdout, stderr, exited } = collectOutput(child)
  const lines = (): JsonLine[] =>
    stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
  const line = async (match: (l: JsonLine) => boolean, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const hit = lines().find(match)
      if (hit) return hit
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`no such line:\n${stdout()}\n${stderr().slice(-3000)}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return {
    child,
    exited,
    stdout,
    stderr,
    lines,
    line,
    waitFor: (event, timeoutMs) => line((l) => l.event === event, timeoutMs),
    stop: async () => {
      child.kill('SIGTERM')
      return exited
    },
  }
}

/** Runs `executor-node <args>` to its end. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  options: CliOptions = {},
): Promise<CliRun> {
  const run = startCli(args, env, options)
  const code = await run.exited
  return { code, stdout: run.stdout(), stderr: run.stderr() }
}

/**
 * A module hook that writes, at exit, every module the process resolved to the file named by
 * `DIGICAP_MODULE_LIST` (synchronously: a write to the stderr pipe at exit was cut off at
 * ~146 KB when the CLI exited, and the list did not parse).
 */
const MODULE_LIST_HOOK = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module'
import { writeFileSync } from 'node:fs'
const seen = []
registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r } })
process.on('exit', () => writeFileSync(process.env.DIGICAP_MODULE_LIST, JSON.stringify(seen)))
`)}`

/** Runs the CLI with a hook that lists every module it resolved. */
export async function runListingModules(args: string[]): Promise<CliRun & { loaded: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'exnode-modules-'))
  try {
    const list = join(dir, 'loaded.json')
    const run = await runCli(
      args,
      { DIGICAP_MODULE_LIST: list },
      { nodeFlags: ['--import', MODULE_LIST_HOOK] },
    )
    return { ...run, loaded: JSON.parse(await readFile(list, 'utf8')) as string[] }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
