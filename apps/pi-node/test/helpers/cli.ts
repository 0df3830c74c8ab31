/**
 * Running the `pi-node` CLI as its own process, as an operator would: from the sources, with
 * only PATH, HOME and the given variables in its environment.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { type ChildOutput, collectOutput } from '@digicap/cli-kit'

export const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))

// biome-ignore lint/suspicious/noExplicitAny: documents parsed from the CLI's JSON output
export type Doc = Record<string, any>

export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Starts `pi-node <args>` (after node's `nodeFlags`); the caller reads its streams and waits for it. */
export function spawnCli(
  args: string[],
  env: Record<string, string> = {},
  nodeFlags: string[] = [],
): ChildProcessWithoutNullStreams {
  return spawn(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', ...nodeFlags, CLI, ...args],
    { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env } },
  )
}

/** A long-running `pi-node` command (`serve --json`): its output so far and its first document. */
export interface CliDaemon extends ChildOutput {
  child: ChildProcessWithoutNullStreams
  /** Its first stdout line (the ready document). */
  ready: Doc
}

/**
 * Starts `pi-node <args>` and waits for its first stdout line (a `--json` daemon's ready
 * document); throws with its stderr if it exits first or stays silent for `timeoutMs` (then
 * it is killed).
 */
export async function startCli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<CliDaemon> {
  const child = spawnCli(args, env)
  const out = collectOutput(child)
  const deadline = Date.now() + timeoutMs
  while (!out.stdout().includes('\n')) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL') // a silent one is not left behind
      throw new Error(`pi-node ${args[0]} printed no first line:\n${out.stderr().slice(-3000)}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return { ...out, child, ready: JSON.parse(out.stdout().split('\n')[0] as string) }
}

/**
 * A module hook for the child: it prints every module URL it resolved, then Node's own
 * modules it loaded (`node:internal/deps/undici/undici` for a first `fetch`), on stderr at exit.
 */
const LIST_MODULES = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module'
const seen = []
registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r } })
process.on('exit', () => {
  const own = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => 'node:' + m.slice(13))
  process.stderr.write('\\nLOADED ' + JSON.stringify([...seen, ...own]) + '\\n')
})
`)}`

/**
 * Workspace packages resolve to their folders (packages/owner/dist/…), npm ones to
 * node_modules: what a light command (`--help`, `status`) must not load. Node's HTTP stack
 * and undici (`fetch`) are ~150 ms of CPU on their own; Ed25519 and the mnemonic code serve only
 * a new or recovered owner identity; capsule-core's main entry brings its codecs and curves
 * (CBOR, secp256k1): `status` reads through the light entries (ADR 0051). The policy grammar's
 * help text (`@digicap/contracts/policy-help`, no imports) is not heavy.
 */
export const HEAVY_MODULES =
  /(@digicap|packages)\/(p2p|executor|contracts(?!\/dist\/policy-help)|sdk|protocol|attestation|oci)\/|helia|libp2p|ethers|prom-client|pi-node\/src\/(pi-node|recover|serve|init)\.ts|^node:(internal\/deps\/undici|_http_)|@noble\/curves\/(ed25519|secp256k1)|@scure\/bip(32|39)|cborg|capsule-core\/dist\/index\.js/

/** Runs `pi-node <args>` to its end and lists every module it resolved (`loaded`). */
export async function runCliListingModules(
  args: string[],
  env: Record<string, string> = {},
): Promise<CliRun & { loaded: string[] }> {
  const r = await runCli(args, env, '', ['--import', LIST_MODULES])
  const [stderr, list] = r.stderr.split('\nLOADED ')
  return { ...r, stderr: stderr ?? '', loaded: JSON.parse(list ?? '[]') as string[] }
}

/** Runs `pi-node <args>` to its end, with `stdin` as its input. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  stdin = '',
  nodeFlags: string[] = [],
): Promise<CliRun> {
  const child = spawnCli(args, env, nodeFlags)
  const out = collectOutput(child)
  child.stdin.end(stdin)
  const code = await out.exited
  return { code, stdout: out.stdout(), stderr: out.stderr() }
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
