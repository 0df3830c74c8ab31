// Run one job in a plain Node process, so that a job able to kill its host (a V8 fatal error)
// fails the test that spawned it instead of the test runner. argv: kind, code file,
// timeLimitMs, memoryLimitBytes. Prints one JSON line: the output (hex) or the error's code and
// details, the wall time and the process's peak RSS.
import { readFileSync } from 'node:fs'
import { quickjsSandbox, wasiSandbox } from '../../src/index.ts'

const [kind, file, timeLimitMs, memoryLimitBytes] = process.argv.slice(2)
const sandbox = kind === 'wasi' ? wasiSandbox() : quickjsSandbox()
const t0 = performance.now()
const peak = () => ({
  ms: Math.round(performance.now() - t0),
  maxRssKB: process.resourceUsage().maxRSS,
})
try {
  const r = await sandbox.run({
    runtime: {
      kind: kind === 'wasi' ? 'wasi' : 'quickjs',
      entry: kind === 'wasi' ? 'main.wasm' : 'main.js',
      memoryLimitBytes: Number(memoryLimitBytes),
      timeLimitMs: Number(timeLimitMs),
    },
    code: readFileSync(file ?? ''),
    input: new Uint8Array(16).fill(7),
  })
  console.log(
    JSON.stringify({ ok: true, output: Buffer.from(r.output).toString('hex'), ...peak() }),
  )
} catch (e) {
  const err = e as { code?: string; details?: unknown }
  console.log(JSON.stringify({ ok: false, code: err.code, details: err.details, ...peak() }))
}
await sandbox.close()
