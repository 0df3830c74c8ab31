/**
 * WASI host cost: Digicap's in-memory preview-1 host (src/sandbox/wasi/host.ts, what the WASI
 * sandbox runs since ADR 0010) against `node:wasi` (what it ran before), same modules, same
 * thread, same run; medians of N. Both sides include what the sandbox does around the
 * module: node:wasi writes the input into a fresh directory on /dev/shm (tmpfs), sends
 * stdout to a file, reads it back and removes the directory; the in-memory host copies the
 * input into a shared buffer and zeroes files, sinks and linear memory at the end.
 *
 * Modules (test/fixtures): compute.wat (xorshift loop, one system call), sum-input.wat
 * (reads /input in 64 KiB pieces), write-out.wat (copies /input to /out/result in 4 KiB
 * writes, seeks, reads it back and writes it to stdout in 4 KiB writes: ~4 system calls
 * per 4 KiB, the host's worst case). Then the whole sandbox (fresh worker) for scale.
 *
 * Run: `node bench/wasi-hosts.ts [runs] [input MiB]`.
 */
import { closeSync, existsSync, openSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WASI } from 'node:wasi'
import wabtInit from 'wabt'
import { wasiSandbox } from '../src/index.ts'
import { runWasiModule } from '../src/sandbox/wasi/host.ts'

const RUNS = Number(process.argv[2] ?? 9)
const MIB = Number(process.argv[3] ?? 4)
const wabt = await wabtInit()

async function wat(name: string, replace: Record<string, string> = {}): Promise<Uint8Array> {
  let text = await readFile(new URL(`../test/fixtures/${name}`, import.meta.url), 'utf8')
  for (const [k, v] of Object.entries(replace)) text = text.replaceAll(k, v)
  const parsed = wabt.parseWat(name, text)
  try {
    return parsed.toBinary({}).buffer
  } finally {
    parsed.destroy()
  }
}

async function median(f: () => Promise<unknown> | unknown): Promise<number> {
  await f() // warm-up
  const xs: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    await f()
    xs.push(performance.now() - t0)
  }
  xs.sort((a, b) => a - b)
  return xs[xs.length >> 1]!
}

const tmpRoot = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()

async function viaNodeWasi(mod: WebAssembly.Module, input: Uint8Array): Promise<Uint8Array> {
  const dir = await mkdtemp(join(tmpRoot, 'bench-wasi-'))
  try {
    await writeFile(join(dir, 'input'), input)
    await mkdir(join(dir, 'out'))
    const stdoutPath = join(dir, '..', `${dir.split('/').pop()}.stdout`)
    const stdout = openSync(stdoutPath, 'w')
    try {
      const w = new WASI({
        version: 'preview1',
        preopens: { '/': dir },
        returnOnExit: true,
        stdout,
      })
      const inst = await WebAssembly.instantiate(mod, w.getImportObject() as WebAssembly.Imports)
      if (w.start(inst) !== 0) throw new Error('node:wasi run failed')
    } finally {
      closeSync(stdout)
    }
    const out = await readFile(stdoutPath)
    await rm(stdoutPath)
    return out
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function viaMemHost(mod: WebAssembly.Module, input: Uint8Array): Uint8Array {
  const shared = new SharedArrayBuffer(input.byteLength)
  new Uint8Array(shared).set(input)
  const r = runWasiModule({
    module: mod,
    input: shared,
    args: ['main.wasm'],
    capPages: 256,
    outputLimitBytes: 64 << 20,
    diskLimitBytes: 64 << 20,
    stderrLimitBytes: 1 << 20,
    timeLimitMs: 60_000,
  })
  new Uint8Array(shared).fill(0)
  if (r.exitCode !== 0) throw new Error(`in-memory host run failed: ${r.trap ?? r.limitHit}`)
  return r.output
}

const input = new Uint8Array(MIB * 1024 * 1024).map((_, i) => (i * 31) & 0xff)
const cases: Array<[string, Uint8Array, Uint8Array]> = [
  [
    'compute (50M xorshift rounds)',
    await wat('compute.wat', { ITERATIONS: '50000000' }),
    new Uint8Array(0),
  ],
  [`sum-input ${MIB} MiB (64 KiB reads)`, await wat('sum-input.wat'), input],
  [`write-out ${MIB} MiB (4 KiB reads/writes, file + stdout)`, await wat('write-out.wat'), input],
]

console.log(
  `WASI hosts, medians of ${RUNS}, load average ${(await import('node:os'))
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
)
console.log('| module | in-memory host ms | node:wasi ms | ratio |')
console.log('|---|---|---|---|')
for (const [name, code, data] of cases) {
  const mod = await WebAssembly.compile(code as Uint8Array<ArrayBuffer>)
  const a = viaMemHost(mod, data)
  const b = await viaNodeWasi(mod, data)
  if (Buffer.compare(a, b) !== 0) throw new Error(`${name}: outputs differ between the hosts`)
  const mem = await median(() => viaMemHost(mod, data))
  const node = await median(() => viaNodeWasi(mod, data))
  console.log(`| ${name} | ${mem.toFixed(1)} | ${node.toFixed(1)} | ${(mem / node).toFixed(2)}× |`)
}

// The whole sandbox (fresh worker per run, compile, clamp, limits) for scale.
const sandbox = wasiSandbox()
const rt = {
  kind: 'wasi' as const,
  entry: 'main.wasm',
  memoryLimitBytes: 16 << 20,
  timeLimitMs: 60_000,
}
const [, wo] = cases[2]!
const full = await median(() => sandbox.run({ runtime: rt, code: wo, input }))
const modWo = await WebAssembly.compile(wo as Uint8Array<ArrayBuffer>)
const nodeWo = await median(() => viaNodeWasi(modWo, input))
console.log(
  `| wasiSandbox write-out ${MIB} MiB (fresh worker) | ${full.toFixed(1)} | ${nodeWo.toFixed(1)} (in-process) | ${(full / nodeWo).toFixed(2)}× |`,
)
await sandbox.close()
