/**
 * One life of a verifier in its own process (`scripts/verifier-child.ts`): spawned with its
 * config, its JSON lines collected as they come, killable with SIGKILL. The restart tests start
 * several lives of one key and compare what each signed.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'

const CHILD = join(import.meta.dirname, '..', 'scripts', 'verifier-child.ts')

/** A line the child printed (`{ event, … }`). */
export interface VerifierDoc {
  event: string
  [k: string]: unknown
}

export interface VerifierLife {
  proc: ChildProcess
  docs: VerifierDoc[]
  /** The last 4,000 characters of its stderr. */
  stderr: () => string
  exited: Promise<void>
}

/** Spawns the child with `config` (its `VERIFIER_CHILD`). */
export function startVerifierLife(config: Record<string, unknown>): VerifierLife {
  const proc = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CHILD], {
    env: { ...process.env, VERIFIER_CHILD: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const docs: VerifierDoc[] = []
  let out = ''
  let err = ''
  proc.stdout?.on('data', (d) => {
    out += d
    for (let i = out.indexOf('\n'); i >= 0; i = out.indexOf('\n')) {
      docs.push(JSON.parse(out.slice(0, i)) as VerifierDoc)
      out = out.slice(i + 1)
    }
  })
  proc.stderr?.on('data', (d) => {
    err += d
  })
  const exited = new Promise<void>((resolve) => proc.on('close', () => resolve()))
  return { proc, docs, stderr: () => err.slice(-4000), exited }
}
