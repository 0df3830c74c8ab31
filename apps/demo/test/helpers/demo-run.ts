/**
 * ONE demo run, shared by every end-to-end check of the demo (a whole run costs 45-75 s; the
 * repo suite cannot pay it once per concern).
 *
 * The run: `node bin/demo.js --json --keep` with DIGICAP_LOG_LEVEL=debug — a real anvil, swtpm,
 * helia and libp2p, every node its own process. It seals, grants, runs by both paths, refuses a
 * third run (and runs its image capsule), prints its JSON document, then keeps its nodes
 * serving (status page, metrics) and its data folder until `stopDemo()` sends it Ctrl-C.
 *
 * To add checks over this run, add a `describe` to test/demo.test.ts (the only file that may
 * use this run; `vitest list` reads titles from the test file itself, so they live there):
 * - `beforeAll(async () => { run = await demoRun() }, 440_000)` gives the document, the
 *   demo's stdout/stderr, its temp folder, its logs folder and each node's data folder;
 * - checks that need the nodes RUNNING go before the operator block (its last test is the
 *   Ctrl-C); checks of the STOPPED demo (final logs, files at rest) go after it and may
 *   `await stopDemo()` (idempotent; resolves to the demo's exit code, 130). The data folder
 *   outlives the stop (--keep); demo.test.ts's afterAll removes it.
 * Never use this from another *.test.ts file: each test file is its own module graph, so it
 * would start a second demo; `demoRun()` refuses to.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { collectOutput } from '@digicap/cli-kit'
import { expect } from 'vitest'

const DEMO = fileURLToPath(new URL('../../bin/demo.js', import.meta.url))
/** The one test file that may run the demo (see the note above). */
const HOST = 'test/demo.test.ts'

// biome-ignore lint/suspicious/noExplicitAny: the demo's JSON document
export type Doc = Record<string, any>

export interface DemoRun {
  /** The demo's JSON document (stdout, whole). */
  doc: Doc
  /** Everything the demo printed so far (stdout is the document; stderr the progress). */
  stdout(): string
  stderr(): string
  /** The demo's temp folder (kept by --keep until demo.test.ts removes it). */
  tempDir: string
  /** Every CLI the demo ran logs there: `<what>.out.log`, `<what>.err.log`. */
  logsDir: string
  /** A node's data folder: 'pi-node', 'executor-node', 'receiver'... */
  dataDir(node: string): string
}

let child: ChildProcess | undefined
let started: Promise<DemoRun> | undefined
let stopped: Promise<number | null> | undefined
let exited: Promise<number | null> | undefined
/** The demo's temp folder, once its document said where (also when the run failed). */
let tempDir: string | undefined

/** Starts the demo on the first call and waits for its document; later calls share that run. */
export function demoRun(): Promise<DemoRun> {
  const file = expect.getState().testPath ?? ''
  if (!file.replaceAll('\\', '/').endsWith(HOST))
    throw new Error(`the shared demo run is for ${HOST} only (called from ${file}); see its note`)
  started ??= start()
  return started
}

async function start(): Promise<DemoRun> {
  const demo = spawn(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', DEMO, '--json', '--keep'],
    {
      env: { ...process.env, DIGICAP_LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  child = demo
  const { stdout, stderr, exited: closed } = collectOutput(demo)
  exited = closed
  const deadline = Date.now() + 420_000
  let doc: Doc
  for (;;) {
    try {
      doc = JSON.parse(stdout())
      break
    } catch {
      // not whole yet
    }
    if (demo.exitCode !== null || Date.now() > deadline)
      throw new Error(`the demo did not print its document:\n${stderr().slice(-4000)}`)
    await new Promise((r) => setTimeout(r, 200))
  }
  tempDir = doc.tempDir as string
  if (doc.ok !== true) throw new Error(`the demo failed:\n${stderr().slice(-3000)}`)
  const dir = tempDir
  return {
    doc,
    stdout,
    stderr,
    tempDir: dir,
    logsDir: join(dir, 'logs'),
    dataDir: (node) => join(dir, node),
  }
}

/** Ctrl-C to the demo (once): it stops every process it started; resolves to its exit code. */
export function stopDemo(): Promise<number | null> {
  stopped ??= (async () => {
    await started?.catch(() => undefined)
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGINT')
    return (await exited) ?? null
  })()
  return stopped
}

/** After every check: the demo stopped, its kept temp folder removed. */
export async function removeDemo(): Promise<void> {
  if (!started) return
  await stopDemo()
  if (tempDir) await rm(tempDir, { recursive: true, force: true })
}
