// Run a WASI module that sleeps forever with poll_oneoff (time limit 500 ms), then one that
// writes a file under /out, each through runInSandbox; write the error codes, run times and
// clean-up reports to the file named by argv[4]. Run as a plain Node process: it must then
// exit on its own (no thread stuck in a sleep may keep it alive).
import { writeFileSync } from 'node:fs'
import { runInSandbox, wasiSandbox } from '../../src/index.ts'

const [sleepB64, writeB64, report] = process.argv.slice(2)
const sandbox = wasiSandbox()
const codes: string[] = []
const elapsedMs: number[] = []
const cleanup: unknown[] = []
for (const [b64, timeLimitMs] of [
  [sleepB64, 500],
  [writeB64, 5000],
] as const) {
  const t0 = performance.now()
  try {
    const r = await runInSandbox({
      sandbox,
      job: {
        runtime: { kind: 'wasi', entry: 'main.wasm', memoryLimitBytes: 1 << 20, timeLimitMs },
        code: Buffer.from(b64 ?? '', 'base64'),
        input: new Uint8Array(200_000).fill(9),
      },
      lifecycle: undefined,
    })
    codes.push('ok')
    cleanup.push(r.cleanup)
  } catch (e) {
    codes.push((e as { code: string }).code)
    cleanup.push({ tempRoots: [] })
  }
  elapsedMs.push(performance.now() - t0)
}
await sandbox.close()
writeFileSync(report ?? '', JSON.stringify({ codes, elapsedMs, cleanup }))
