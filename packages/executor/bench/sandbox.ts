/**
 * Sandbox cost, measured against baselines in the same run (medians of N runs):
 *
 * 1. start-up: a trivial program in the QuickJS sandbox (fresh worker + fresh QuickJS
 *    runtime per run) vs. the same program in a fresh `node:vm` context, and vs. spawning
 *    `node -e`.
 * 2. aggregate: examples/aggregate/main.js over a 1 MiB CSV in QuickJS vs. `node:vm` vs.
 *    `node` as a child process reading the CSV from stdin.
 * 3. WASI start-up: test/fixtures/sum-input.wat over 1 MiB in the WASI sandbox (worker,
 *    in-memory host, metering, zeroing) vs. the same module run with `node:wasi` in-process
 *    (bench/wasi-hosts.ts compares the two hosts module by module).
 *
 * Run: `pnpm --filter @digicap/executor bench` (or `node bench/sandbox.ts [runs]`).
 */
import { execFile } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createContext, runInContext } from 'node:vm'
import { WASI } from 'node:wasi'
import wabtInit from 'wabt'
import { syntheticCsv } from '../examples/aggregate/make-data.ts'
import { quickjsSandbox, wasiSandbox } from '../src/index.ts'

const RUNS = Number(process.argv[2] ?? 15)
const enc = (s: string) => new TextEncoder().encode(s)

async function median(f: () => Promise<unknown>, pauseMs = 0): Promise<number> {
  await f() // warm-up
  const xs: number[] = []
  for (let i = 0; i < RUNS; i++) {
    if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs)) // untimed idle gap
    const t0 = performance.now()
    await f()
    xs.push(performance.now() - t0)
  }
  xs.sort((a, b) => a - b)
  return xs[xs.length >> 1]!
}

function nodeChild(code: string, stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, ['-e', code], (err, out) =>
      err ? reject(err) : resolve(out),
    )
    child.stdin?.end(stdin ?? '')
  })
}

function inVm(source: string, input: Uint8Array): Uint8Array {
  const chunks: string[] = []
  const digicap = {
    input: () => input.slice().buffer,
    inputText: () => new TextDecoder().decode(input),
    output: (x: string) => chunks.push(x),
    log: () => {},
    args: [],
  }
  runInContext(source, createContext({ digicap }), { timeout: 10_000 })
  return enc(chunks.join(''))
}

const rows: Array<[string, number, string, number]> = []
const row = (name: string, ms: number, baseline: string, baseMs: number) => {
  rows.push([name, ms, baseline, baseMs])
  console.log(
    `${name.padEnd(40)} ${ms.toFixed(2).padStart(9)} ms   ${baseline.padEnd(32)} ${baseMs
      .toFixed(2)
      .padStart(9)} ms   ratio ${(ms / baseMs).toFixed(2)}×`,
  )
}

const quickjs = quickjsSandbox()
const qjsRt = (timeLimitMs: number) => ({
  kind: 'quickjs' as const,
  entry: 'main.js',
  memoryLimitBytes: 256 * 1024 * 1024,
  timeLimitMs,
})

console.log(`executor sandbox bench — ${RUNS} runs each, medians, Node ${process.version}\n`)

// 1. start-up
const trivial = 'digicap.output("ok")'
const qStart = await median(() =>
  quickjs.run({ runtime: qjsRt(5000), code: enc(trivial), input: new Uint8Array(0) }),
)
const vmStart = await median(async () => inVm(trivial, new Uint8Array(0)))
const nodeStart = await median(() => nodeChild('process.stdout.write("ok")'))
row('quickjs start-up (trivial)', qStart, 'node:vm new context', vmStart)
row('quickjs start-up (trivial)', qStart, 'spawn node -e', nodeStart)
const warm = quickjsSandbox({ prewarm: true })
// A spare needs time to boot: measure with an idle gap between runs, as jobs arrive.
const qWarm = await median(
  () => warm.run({ runtime: qjsRt(5000), code: enc(trivial), input: new Uint8Array(0) }),
  300,
)
const qCold = await median(
  () => quickjs.run({ runtime: qjsRt(5000), code: enc(trivial), input: new Uint8Array(0) }),
  300,
)
row('quickjs start-up, prewarmed, 300ms gap', qWarm, 'same, fresh worker, 300ms gap', qCold)

// 2. aggregate over 1 MiB CSV
let csv = syntheticCsv(10)
for (let n = 10; csv.length < 1024 * 1024; ) {
  n = Math.ceil(n * ((1024 * 1024) / csv.length)) + 1
  csv = syntheticCsv(n)
}
const csvBytes = enc(csv)
const main = await readFile(new URL('../examples/aggregate/main.js', import.meta.url), 'utf8')
const expected = new TextDecoder().decode(inVm(main, csvBytes))
const qAgg = await median(async () => {
  const r = await quickjs.run({ runtime: qjsRt(60_000), code: enc(main), input: csvBytes })
  if (new TextDecoder().decode(r.output) !== expected) throw new Error('quickjs result differs')
})
const vmAgg = await median(async () => inVm(main, csvBytes))
const shim = `const chunks=[];const input=require('fs').readFileSync(0);const digicap={inputText:()=>input.toString('utf8'),output:(x)=>chunks.push(x),log:()=>{}};\n${main}\nprocess.stdout.write(chunks.join(''))`
const nodeAgg = await median(async () => {
  const out = await nodeChild(shim, csv)
  if (out !== expected) throw new Error('node result differs')
})
const mib = (csvBytes.length / 1024 / 1024).toFixed(2)
row(`quickjs aggregate ${mib} MiB CSV`, qAgg, 'node:vm same program', vmAgg)
row(`quickjs aggregate ${mib} MiB CSV`, qAgg, 'spawn node, CSV on stdin', nodeAgg)

// 3. WASI
const wabt = await wabtInit()
const watText = await readFile(new URL('../test/fixtures/sum-input.wat', import.meta.url), 'utf8')
const parsed = wabt.parseWat('sum-input.wat', watText)
const wasm = parsed.toBinary({}).buffer
parsed.destroy()
const wasi = wasiSandbox()
const input = new Uint8Array(1024 * 1024).map((_, i) => i & 0xff)
const wasiRt = {
  kind: 'wasi' as const,
  entry: 'main.wasm',
  memoryLimitBytes: 16 << 20,
  timeLimitMs: 10_000,
}
const wSandbox = await median(() => wasi.run({ runtime: wasiRt, code: wasm, input }))
const mod = await WebAssembly.compile(wasm as Uint8Array<ArrayBuffer>)
const wDirect = await median(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-wasi-'))
  try {
    await writeFile(join(dir, 'input'), input)
    const devNull = openSync('/dev/null', 'w')
    try {
      const w = new WASI({
        version: 'preview1',
        preopens: { '/': dir },
        returnOnExit: true,
        stdout: devNull,
      })
      const inst = await WebAssembly.instantiate(mod, w.getImportObject() as WebAssembly.Imports)
      w.start(inst)
    } finally {
      closeSync(devNull)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
row('wasi sandbox sum 1 MiB', wSandbox, 'node:wasi in-process', wDirect)
await warm.close()
const wTrivial = await median(() =>
  wasi.run({ runtime: wasiRt, code: wasm, input: new Uint8Array(0) }),
)
row('wasi start-up (empty input)', wTrivial, 'quickjs start-up (trivial)', qStart)
