// Run one job of each kind (success and timeout), then print the process's active
// resources. Run as a plain Node process (no test runner noise): it must print `[]` and
// exit on its own, which it cannot do if a worker, port, timer or file stays open.
import { quickjsSandbox, runInSandbox, wasiSandbox } from '../../src/index.ts'

const wasm = Buffer.from(process.argv[2] ?? '', 'base64')
const loop = Buffer.from(process.argv[3] ?? '', 'base64')
const rt = (kind: 'quickjs' | 'wasi', timeLimitMs = 1000) => ({
  kind,
  entry: kind === 'wasi' ? 'main.wasm' : 'main.js',
  memoryLimitBytes: 16 << 20,
  timeLimitMs,
})
const enc = (s: string) => new TextEncoder().encode(s)
const codes: string[] = []
const attempt = async (f: () => Promise<unknown>) => {
  try {
    await f()
    codes.push('ok')
  } catch (e) {
    codes.push((e as { code: string }).code)
  }
}
await attempt(() =>
  runInSandbox({
    sandbox: quickjsSandbox(),
    job: { runtime: rt('quickjs'), code: enc('digicap.output("1")'), input: enc('x') },
  }),
)
await attempt(() =>
  runInSandbox({
    sandbox: quickjsSandbox(),
    job: { runtime: rt('quickjs', 200), code: enc('for(;;){}'), input: enc('x') },
  }),
)
await attempt(() =>
  runInSandbox({
    sandbox: wasiSandbox(),
    job: { runtime: rt('wasi'), code: new Uint8Array(wasm), input: enc('x') },
  }),
)
await attempt(() =>
  runInSandbox({
    sandbox: wasiSandbox(),
    job: { runtime: rt('wasi', 200), code: new Uint8Array(loop), input: enc('x') },
  }),
)
// Node finishes its own bookkeeping requests (the FSReqCallback of the last unlink) on
// the next loop turns; give it those, then read the resources before touching process.stdout (whose pipe is opened lazily).
await new Promise((r) => setTimeout(r, 50))
const resources = process.getActiveResourcesInfo()
process.stdout.write(`${JSON.stringify({ codes, resources })}\n`)
