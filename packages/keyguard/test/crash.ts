/** Runs the crash writer child and SIGKILLs it mid-write. */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const WRITER = fileURLToPath(new URL('./fixtures/store-writer.ts', import.meta.url))

/** Starts the writer, waits until it is busy, lets it run `runMs`, then kills it with -9. */
export async function runAndKill(
  dir: string,
  mode: 'store' | 'journal',
  runMs: number,
): Promise<string[]> {
  const child = spawn(process.execPath, ['--no-warnings', WRITER, dir, mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  )
  const started = Date.now()
  while (!out.includes('\n')) {
    if (child.exitCode !== null) throw new Error(`writer exited early: ${err}`)
    if (Date.now() - started > 10_000) throw new Error(`writer did not start: ${err}`)
    await new Promise((r) => setTimeout(r, 5))
  }
  await new Promise((r) => setTimeout(r, runMs))
  child.kill('SIGKILL')
  const how = await exited
  if (how !== 'SIGKILL') throw new Error(`writer ended with ${String(how)}: ${err}`)
  return out.split('\n').filter(Boolean)
}
