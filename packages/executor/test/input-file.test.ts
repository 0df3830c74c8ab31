/**
 * ADR 0035: the payload streamed to the run's plaintext file and read by the sandboxes in
 * chunks. The open writes a file whose data range and digest match the in-memory path (same
 * job, same run measurement); WASI and QuickJS programs read it by chunks; a bundle that is
 * not canonical is refused typed; and the file is wiped and removed whatever the program
 * does (result, crash, time-out).
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { encodeBundle, payloadDigest, runtimeMeasurement } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import {
  createRunWorkspace,
  dataSandbox,
  decodeBundle,
  jobFromBundle,
  quickjsSandbox,
  type RunWorkspace,
  runInSandbox,
  runLifecycle,
  type Sandbox,
  type SandboxJob,
  wasiSandbox,
} from '../src/index.ts'
import { bundleDataRange, jobFromBundleFile } from '../src/load/bundle-file.ts'
import { memoryFsRoot, openPayloadToFile } from '../src/run/open-payload.ts'
import { capsuleFile } from './helpers/capsule-file.ts'
import { tempWorkspaces } from './helpers/temp-workspace.ts'
import { dec, enc, runtime, wat } from './helpers.ts'

const execFileP = promisify(execFile)

const workspaceDir = tempWorkspaces('input-file-test-')

/** A job whose payload data sits in a plaintext file between junk bytes, as in a bundle. */
async function fileJob(data: Uint8Array, over: Partial<SandboxJob>, ws: RunWorkspace, dir: string) {
  const path = join(dir, 'plaintext')
  const before = randomBytes(11)
  await writeFile(path, Buffer.concat([before, data, randomBytes(5)]), { mode: 0o600 })
  ws.trackFile(path)
  return {
    runtime: runtime('quickjs'),
    code: new Uint8Array(0),
    input: new Uint8Array(0),
    inputFile: { path, offset: before.byteLength, size: data.byteLength },
    payloadDigest: payloadDigest(data, 64),
    ...over,
  } as SandboxJob
}

describe('the open streams the payload to a file', () => {
  it('finds the tmpfs: /dev/shm here, and never a disk folder', async () => {
    expect(await memoryFsRoot([tmpdir(), '/dev/shm'])).toBe(
      existsSync('/dev/shm') ? '/dev/shm' : undefined,
    )
    expect(await memoryFsRoot([tmpdir(), '/nonexistent'])).toBeUndefined()
  })

  it('a bundle: the same job and run measurement as the in-memory path, the whole bundle measured', async () => {
    const { ws, dir } = await workspaceDir()
    const code = enc('digicap.output(String(digicap.inputSize))')
    // 300 KiB of data: a 5-byte bstr header; the files come after the data.
    const bundle = { entry: 'main.js', files: { 'main.js': code }, data: randomBytes(300 * 1024) }
    const plaintext = encodeBundle(bundle)
    const { src, dataKey } = await capsuleFile(dir, plaintext)
    const opened = await openPayloadToFile(src, dataKey, { dir, workspace: ws })
    expect(new Uint8Array(await readFile(opened.path))).toEqual(plaintext)
    const rt = runtime('quickjs')
    const job = await jobFromBundleFile({
      runtime: rt,
      path: opened.path,
      fileSize: opened.size,
      payloadDigest: opened.payloadDigest,
    })
    expect(job.inputFile).toMatchObject({ offset: 14, size: bundle.data.byteLength })
    const inMemory = jobFromBundle(rt, decodeBundle(plaintext))
    expect(job.code).toEqual(inMemory.code)
    expect(job.input.byteLength).toBe(0)
    // The payload digest is the whole bundle's (code files too), at the header's chunk size.
    const m = runtimeMeasurement({
      runtimeId: 'x',
      runtime: rt,
      code: job.code,
      payloadDigest: job.payloadDigest as Uint8Array,
    })
    expect(m).toEqual(
      runtimeMeasurement({
        runtimeId: 'x',
        runtime: rt,
        code: inMemory.code,
        input: plaintext,
        chunkSize: src.parsed.header.payload.chunkSize,
      }),
    )
    const r = await quickjsSandbox().run(job)
    expect(dec(r.output)).toBe(String(bundle.data.byteLength))
  })

  it('a payload that is not a canonical bundle is BUNDLE_FORMAT, typed, after the open', async () => {
    const { ws, dir } = await workspaceDir()
    const good = encodeBundle({ entry: 'main.js', files: { 'main.js': enc('1') }, data: enc('ab') })
    // The same bundle with its 2-byte data given a non-shortest header (0x58 0x02).
    const long = Uint8Array.from([...good.subarray(0, 9), 0x58, 0x02, ...good.subarray(10)])
    expect(bundleDataRange(long)).toBe('bad')
    for (const plaintext of [enc('plain text, not a bundle'), long, good.subarray(0, 12)]) {
      const { src, dataKey } = await capsuleFile(dir, plaintext)
      const opened = await openPayloadToFile(src, dataKey, {
        dir: await ws.tempDir('bad-'),
        workspace: ws,
      })
      await expect(
        jobFromBundleFile({
          runtime: runtime('quickjs'),
          path: opened.path,
          fileSize: opened.size,
          payloadDigest: opened.payloadDigest,
        }),
      ).rejects.toMatchObject({ code: 'BUNDLE_FORMAT' })
    }
  })
})

describe('sandboxes read the file by chunks', () => {
  it('WASI: /input is the data range of the file, read by fd_read in 64 KiB pieces', async () => {
    const { ws, dir } = await workspaceDir()
    const data = randomBytes(3 * 1024 * 1024 + 17)
    const job = await fileJob(
      data,
      { runtime: runtime('wasi', { memoryLimitBytes: 1 << 20 }), code: wat('sum-input.wat') },
      ws,
      dir,
    )
    const r = await wasiSandbox().run(job)
    const v = new DataView(r.output.buffer, r.output.byteOffset)
    expect(v.getUint32(0, true)).toBe(data.byteLength)
    expect(v.getUint32(4, true)).toBe(data.reduce((a, b) => a + b, 0) >>> 0)
  })

  it('QuickJS: digicap.read by chunks covers a payload larger than the memory limit; input() refuses it', async () => {
    const { ws, dir } = await workspaceDir()
    const data = randomBytes(5 * 1024 * 1024)
    // The first and last byte of every 256 KiB chunk: enough to show each chunk is the right one.
    let sum = 0
    for (let at = 0; at < data.byteLength; at += 256 * 1024) {
      sum += (data[at] as number) + (data[Math.min(at + 256 * 1024, data.byteLength) - 1] as number)
    }
    const code = enc(`
      let sum = 0, at = 0
      for (;;) {
        const c = new Uint8Array(digicap.read(at, 256 * 1024))
        if (c.length === 0) break
        sum += c[0] + c[c.length - 1]
        at += c.length
      }
      let refused = ''
      try { digicap.input() } catch (e) { refused = e.name }
      digicap.output(JSON.stringify({ size: digicap.inputSize, at, sum, refused, past: digicap.read(at + 5, 10).byteLength }))`)
    const job = await fileJob(
      data,
      { runtime: runtime('quickjs', { memoryLimitBytes: 4 << 20, timeLimitMs: 20_000 }), code },
      ws,
      dir,
    )
    const r = await quickjsSandbox().run(job)
    expect(JSON.parse(dec(r.output))).toEqual({
      size: data.byteLength,
      at: data.byteLength,
      sum,
      refused: 'RangeError',
      past: 0,
    })
  })

  it('data: the fromFile handler gets the file; the in-memory one keeps the buffer', async () => {
    const { ws, dir } = await workspaceDir()
    const sandbox = dataSandbox(() => 'memory', { fromFile: (f) => `file ${f.size}` })
    expect(sandbox.readsInputFile).toBe(true)
    const job = await fileJob(enc('hello'), { runtime: runtime('data') }, ws, dir)
    expect(dec((await sandbox.run(job)).output)).toBe('file 5')
    const inMemory = { runtime: runtime('data'), code: new Uint8Array(0), input: enc('x') }
    expect(dec((await sandbox.run(inMemory)).output)).toBe('memory')
    await expect(dataSandbox(() => 'm').run(job)).rejects.toMatchObject({ code: 'SANDBOX_CRASH' })
  })
})

describe('a job with inputFile measures only the open’s digest', () => {
  it('without payloadDigest it is refused before anything is measured or run, by any sandbox', async () => {
    const { ws, dir } = await workspaceDir()
    const job = await fileJob(enc('hello'), { runtime: runtime('data') }, ws, dir)
    const { payloadDigest: _dropped, ...noDigest } = job
    // a sandbox that never checks its job: the run itself must refuse it
    const base = dataSandbox(() => 'memory', { fromFile: (f) => `file ${f.size}` })
    let ran = false
    const sandbox: Sandbox = {
      ...base,
      run: (j, o) => {
        ran = true
        return base.run(j, o)
      },
    } as Sandbox
    const lifecycle = runLifecycle()
    const events: string[] = []
    lifecycle.on('after-load', () => {
      events.push('after-load')
    })
    await expect(
      runInSandbox({ sandbox, job: noDigest as SandboxJob, workspace: ws, lifecycle }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    expect(ran).toBe(false)
    expect(events).toEqual([])
  })
})

describe('the plaintext file is wiped and removed in every outcome', () => {
  const cases: [string, () => Partial<SandboxJob>, string | undefined][] = [
    ['a QuickJS result', () => ({ code: enc('digicap.output("ok")') }), undefined],
    ['a QuickJS crash', () => ({ code: enc('throw new Error("boom")') }), 'SANDBOX_CRASH'],
    [
      'a QuickJS time-out',
      () => ({ runtime: runtime('quickjs', { timeLimitMs: 300 }), code: enc('while (true) {}') }),
      'SANDBOX_TIMEOUT',
    ],
    [
      'a WASI crash (exit 3)',
      () => ({
        runtime: runtime('wasi'),
        code: wat('exit-code.wat', { 'i32.const EXIT_CODE': 'i32.const 3' }),
      }),
      'SANDBOX_CRASH',
    ],
    [
      'a WASI time-out',
      () => ({ runtime: runtime('wasi', { timeLimitMs: 300 }), code: wat('loop-forever.wat') }),
      'SANDBOX_TIMEOUT',
    ],
  ]
  const quickjs = quickjsSandbox()
  const wasi = wasiSandbox()
  it.each(cases)('%s', async (_label, over, code) => {
    const ws = createRunWorkspace({ tmpRoot: tmpdir() })
    const dir = await ws.tempDir('wipe-test-')
    const data = randomBytes(200_000)
    const job = await fileJob(data, over(), ws, dir)
    const path = job.inputFile?.path as string
    const sandbox = job.runtime.kind === 'wasi' ? wasi : quickjs
    const run = runInSandbox({ sandbox, job, workspace: ws })
    const outcome = await run.then(
      (r) => ({ ok: true as const, cleanup: r.cleanup }),
      (e: { code?: string }) => ({ ok: false as const, code: e.code }),
    )
    if (code) expect(outcome).toMatchObject({ ok: false, code })
    expect(existsSync(path)).toBe(false)
    expect(existsSync(dir)).toBe(false)
    if (outcome.ok) {
      expect(outcome.cleanup.fileBytesOverwritten).toBeGreaterThanOrEqual(data.byteLength + 16)
      expect(outcome.cleanup.failures).toEqual([])
    }
  })
})

describe('memory stays flat in the payload size', () => {
  it('open → run by file peaks the same at 1 and 32 MiB; into memory it holds the payload twice', async () => {
    if (!existsSync('/dev/shm')) return expect(await memoryFsRoot(['/dev/shm'])).toBeUndefined()
    const { ws } = await workspaceDir()
    const wasm = Buffer.from(wat('sum-input.wat')).toString('base64')
    const capsules = new Map<number, Awaited<ReturnType<typeof capsuleFile>>>()
    for (const n of [1 << 20, 32 << 20]) {
      const data = new Uint8Array(n).fill(3)
      const plaintext = encodeBundle({ entry: 'main.wasm', files: { 'main.wasm': enc('x') }, data })
      capsules.set(n, await capsuleFile(await ws.tempDir('peak-'), plaintext))
    }
    const peak = async (dataBytes: number, mode: 'file' | 'memory') => {
      const { src, dataKey } = capsules.get(dataBytes) as Awaited<ReturnType<typeof capsuleFile>>
      const script = new URL('./scripts/open-run-peak.ts', import.meta.url).pathname
      const { stdout } = await execFileP(
        process.execPath,
        [
          script,
          src.path,
          src.owner,
          String(src.parsed.payloadOffset),
          Buffer.from(dataKey).toString('hex'),
          mode,
          wasm,
          '/dev/shm',
        ],
        { maxBuffer: 1 << 20, env: { PATH: process.env.PATH ?? '' } },
      )
      const r = JSON.parse(stdout) as {
        peakKiB: number
        length: number
        cleanup: { failures: string[] }
      }
      expect(r.length).toBe(dataBytes)
      expect(r.cleanup.failures).toEqual([])
      return r.peakKiB / 1024
    }
    const small = await peak(1 << 20, 'file')
    const large = await peak(32 << 20, 'file')
    const inMemory = await peak(32 << 20, 'memory')
    // By file the peak does not move with the payload; into memory (the path before ADR 0035)
    // the payload sits in the process twice (the open's buffer and WASI's shared copy). Up to
    // 1 GiB: the bench (bench/executor-path.ts).
    expect(large - small).toBeLessThan(12)
    expect(inMemory - small).toBeGreaterThan(48)
  })
})
