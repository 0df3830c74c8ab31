/** Talk to a daemon's run socket by hand (bad requests), and list what a CLI run loads. */
import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

/** A frame as the protocol has it: u32 BE length, then the bytes. */
export function frame(body: string | Uint8Array, declared?: number): Buffer {
  const bytes = Buffer.from(body)
  const head = Buffer.alloc(4)
  head.writeUInt32BE(declared ?? bytes.byteLength)
  return Buffer.concat([head, bytes])
}

/** Sends `bytes`, returns the first answer frame (parsed) once the daemon closes. */
export function askSocket(path: string, bytes: Buffer): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(path)
    let got = Buffer.alloc(0)
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d])
    })
    s.on('error', reject)
    s.on('close', () => {
      const len = got.readUInt32BE(0)
      resolve(JSON.parse(got.subarray(4, 4 + len).toString('utf8')) as Record<string, unknown>)
    })
    s.write(bytes)
  })
}

const HOOK = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module'
const seen = []
registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r } })
process.on('exit', () => process.stderr.write('\\nLOADED ' + JSON.stringify(seen) + '\\n'))
`)}`

/** Runs the CLI with a hook that lists every module it resolved. */
export function runListingModules(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string; loaded: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [
      '--disable-warning=ExperimentalWarning',
      '--import',
      HOOK,
      CLI,
      ...args,
    ])
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code) => {
      const [before, list] = stderr.split('\nLOADED ')
      resolve({ code, stdout, stderr: before ?? '', loaded: JSON.parse(list ?? '[]') as string[] })
    })
  })
}
