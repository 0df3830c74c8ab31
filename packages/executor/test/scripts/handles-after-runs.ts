// Run one job of each kind (success and timeout), with and without prewarmed spares, then
// record the process's active resources in the file named by argv[4]. Run as a plain Node
// process with stdio ignored (no test runner, no stdio pipes): the resources must be `[]`
// and the process must exit on its own, which it cannot do if a worker, port, timer or
// file stays open.
import { writeFileSync } from 'node:fs'
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
// Prewarmed sandboxes keep a spare worker between runs; close() ends it.
const warmQ = quickjsSandbox({ prewarm: true })
const warmW = wasiSandbox({ prewarm: true })
await attempt(() =>
  warmQ.run({ runtime: rt('quickjs'), code: enc('digicap.output("1")'), input: enc('x') }),
)
await attempt(() =>
  warmQ.run({ runtime: rt('quickjs', 200), code: enc('for(;;){}'), input: enc('x') }),
)
await attempt(() => warmW.run({ runtime: rt('wasi'), code: new Uint8Array(wasm), input: enc('x') }))
await warmQ.close()
await warmW.close()
// A prewarmed sandbox nobody closes must not keep the process alive either (its spare is
// unref'd); this one is left open on purpose and the process must still exit.
const forgotten = quickjsSandbox({ prewarm: true })
await attempt(() =>
  forgotten.run({ runtime: rt('quickjs'), code: enc('digicap.output("1")'), input: enc('x') }),
)
const resourcesWithSpare = process.getActiveResourcesInfo().length
// Node finishes its own bookkeeping requests (the FSReqCallback of the last unlink) on
// the next loop turns; give it those, then read the resources.
await new Promise((r) => setTimeout(r, 50))

const resources = process.getActiveResourcesInfo()
writeFileSync(process.argv[4]!, JSON.stringify({ codes, resources, resourcesWithSpare }))
