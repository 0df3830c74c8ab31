/**
 * Running the `pi-node` CLI as its own process, as an operator would: from the sources, with
 * only PATH, HOME and the given variables in its environment.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))

// biome-ignore lint/suspicious/noExplicitAny: documents parsed from the CLI's JSON output
export type Doc = Record<string, any>

export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Starts `pi-node <args>`; the caller reads its streams and waits for it. */
export function spawnCli(
  args: string[],
  env: Record<string, string> = {},
): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
  })
}

/** Runs `pi-node <args>` to its end, with `stdin` as its input. */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  stdin = '',
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, env)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin)
  })
}

/** Runs a `--json` command: its one JSON document, with the exit code and stderr added. */
export async function runJson(args: string[], env: Record<string, string> = {}): Promise<Doc> {
  const { code, stdout, stderr } = await runCli(args, env)
  try {
    return { code, stderr, ...JSON.parse(stdout) }
  } catch {
    throw new Error(`not JSON (exit ${code}):\n${stdout}\n--- stderr:\n${stderr}`)
  }
}
