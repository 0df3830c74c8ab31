import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_CHUNK_SIZE } from '@digicap/capsule-core'
import { encode } from 'cborg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type CleanupReport,
  createRunWorkspace,
  DATA_RUNTIME_ID,
  dataSandbox,
  QUICKJS_RUNTIME_ID,
  quickjsSandbox,
  type RunLifecycleEvents,
  runInSandbox,
  runLifecycle,
  runtimeMeasurement,
  sandboxFor,
  wasiSandbox,
} from '../src/index.ts'
import { dec, enc, leakable, runtime, wat } from './helpers.ts'

let tmpRoot: string
beforeAll(async () => {
  tmpRoot = await mkdtemp(join(tmpdir(), 'executor-test-'))
})
afterAll(async () => {
  await rm(tmpRoot, { recursive: true, force: true })
})

const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest())

describe('runtimeMeasurement', () => {
  it('is SHA-256 over its label, the canonical runtime map, the code and the payload digest (v2)', () => {
    const rt = runtime('quickjs')
    const code = enc('digicap.output(1)')
    const input = enc('data')
    const m = runtimeMeasurement({
      runtimeId: QUICKJS_RUNTIME_ID,
      runtime: rt,
      code,
      input,
      chunkSize: 64,
    })
    const rtHash = sha(
      encode({
        id: QUICKJS_RUNTIME_ID,
        kind: 'quickjs',
        entry: 'main.js',
        memoryLimitBytes: rt.memoryLimitBytes,
        timeLimitMs: rt.timeLimitMs,
      }),
    )
    expect(m.runtime).toEqual(rtHash)
    expect(m.code).toEqual(sha(code))
    // One chunk: SHA-256(label ‖ u32be(64) ‖ u64be(4) ‖ SHA-256(input)).
    const sizes = Buffer.from('00000040' + '0000000000000004', 'hex')
    const payload = sha(
      Buffer.concat([Buffer.from('digicap/v2 payload digest chunked sha256'), sizes, sha(input)]),
    )
    expect(m.payload).toEqual(payload)
    expect(m.run).toEqual(
      sha(Buffer.concat([Buffer.from('digicap/v2 run measurement'), rtHash, sha(code), payload])),
    )
    // Any change to the limits changes the measurement.
    const m2 = runtimeMeasurement({
      runtimeId: QUICKJS_RUNTIME_ID,
      runtime: { ...rt, timeLimitMs: rt.timeLimitMs + 1 },
      code,
      input,
      chunkSize: 64,
    })
    expect(m2.run).not.toEqual(m.run)
    // The fixed vector (docs/bundle.md §7) is checked in capsule-core's test/code-bundle.test.ts.
  })
})

describe('sandboxFor', () => {
  it('picks the configured sandbox and refuses unknown kinds with a typed error', () => {
    const q = quickjsSandbox()
    expect(sandboxFor({ kind: 'quickjs' }, { quickjs: q })).toBe(q)
    expect(() => sandboxFor({ kind: 'wasi' }, { quickjs: q })).toThrow(
      expect.objectContaining({ code: 'SANDBOX_RUNTIME_UNSUPPORTED' }),
    )
    expect(() => sandboxFor({ kind: 'docker' as never }, { quickjs: q })).toThrow(
      expect.objectContaining({ code: 'SANDBOX_RUNTIME_UNSUPPORTED' }),
    )
  })
})

describe('dataSandbox', () => {
  it('hands the plaintext to the caller function and returns its output', async () => {
    const s = dataSandbox((bytes, ctx) => `${bytes.length}:${ctx.args.join()}`)
    const r = await s.run({
      runtime: runtime('data'),
      code: new Uint8Array(0),
      input: enc('abc'),
      args: ['z'],
    })
    expect(dec(r.output)).toBe('3:z')
    expect(s.runtimeId).toBe(DATA_RUNTIME_ID)
  })

  it('a slow handler is SANDBOX_TIMEOUT and sees its signal aborted', async () => {
    let aborted = false
    const s = dataSandbox(
      (_b, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            aborted = true
            resolve(undefined)
          })
        }),
    )
    await expect(
      s.run({
        runtime: runtime('data', { timeLimitMs: 50 }),
        code: new Uint8Array(0),
        input: enc(''),
      }),
    ).rejects.toMatchObject({ code: 'SANDBOX_TIMEOUT' })
    expect(aborted).toBe(true)
  })

  it('a throwing handler is SANDBOX_CRASH with the cause kept', async () => {
    const boom = new Error('handler bug')
    const s = dataSandbox(() => {
      throw boom
    })
    await expect(
      s.run({ runtime: runtime('data'), code: new Uint8Array(0), input: enc('') }),
    ).rejects.toMatchObject({ code: 'SANDBOX_CRASH', cause: boom })
  })
})

describe('runInSandbox: lifecycle and clean-up', () => {
  it('emits before-load, after-load (measurements), after-run, after-cleanup in order', async () => {
    const lifecycle = runLifecycle()
    const seen: Array<[string, unknown]> = []
    for (const e of ['before-load', 'after-load', 'after-run', 'after-cleanup'] as const) {
      lifecycle.on(e, (d: RunLifecycleEvents[typeof e]) => {
        seen.push([e, d])
      })
    }
    const code = enc('digicap.output(digicap.inputText().length + "")')
    const input = enc('hello')
    // A job not opened from a capsule: its input measured at the default chunk size.
    const expected = runtimeMeasurement({
      runtimeId: QUICKJS_RUNTIME_ID,
      runtime: runtime('quickjs'),
      code,
      input,
      chunkSize: DEFAULT_CHUNK_SIZE,
    })
    const key = new Uint8Array(32).fill(7)
    const { result, measurements, cleanup, runId } = await runInSandbox({
      sandbox: quickjsSandbox(),
      job: { runtime: runtime('quickjs'), code, input },
      lifecycle,
      secrets: [key],
    })
    expect(dec(result.output)).toBe('5')
    expect(measurements).toEqual(expected)
    expect(seen.map(([e]) => e)).toEqual([
      'before-load',
      'after-load',
      'after-run',
      'after-cleanup',
    ])
    expect(seen[0]![1]).toMatchObject({
      runId,
      kind: 'quickjs',
      codeBytes: code.length,
      inputBytes: 5,
    })
    expect(seen[1]![1]).toEqual({ runId, measurements: expected })
    expect(seen[2]![1]).toMatchObject({ runId, ok: true, outputBytes: 1 })
    expect((seen[3]![1] as { report: CleanupReport }).report).toBe(cleanup)
    // key, code and input zeroed here, plus the worker's copies and the VM's linear memory
    expect(key.every((b) => b === 0)).toBe(true)
    expect(code.every((b) => b === 0)).toBe(true)
    expect(input.every((b) => b === 0)).toBe(true)
    expect(cleanup.buffersZeroed).toBeGreaterThanOrEqual(5)
    expect(cleanup.bytesZeroed).toBeGreaterThan(32 + code.length + 5)
    expect(cleanup.failures).toEqual([])
  })

  it('a failed run still cleans up, reports the error code, and rethrows it', async () => {
    const lifecycle = runLifecycle()
    const events: Array<RunLifecycleEvents['after-run'] | CleanupReport> = []
    lifecycle.on('after-run', (e) => {
      events.push(e)
    })
    lifecycle.on('after-cleanup', (e) => {
      events.push(e.report)
    })
    const key = new Uint8Array(16).fill(9)
    await expect(
      runInSandbox({
        sandbox: quickjsSandbox(),
        job: {
          runtime: runtime('quickjs', { timeLimitMs: 200 }),
          code: enc('for(;;){}'),
          input: enc('x'),
        },
        lifecycle,
        secrets: [key],
      }),
    ).rejects.toMatchObject({ code: 'SANDBOX_TIMEOUT' })
    expect(events[0]).toMatchObject({ ok: false, errorCode: 'SANDBOX_TIMEOUT' })
    expect((events[1] as CleanupReport).buffersZeroed).toBeGreaterThanOrEqual(3)
    expect(key.every((b) => b === 0)).toBe(true)
  })

  it('a QuickJS run interrupted inside an unawaited promise job yields no result: after-run says SANDBOX_TIMEOUT', async () => {
    const lifecycle = runLifecycle()
    const runs: Array<RunLifecycleEvents['after-run']> = []
    lifecycle.on('after-run', (e) => {
      runs.push(e)
    })
    const outcome = await runInSandbox({
      sandbox: quickjsSandbox(),
      job: {
        runtime: runtime('quickjs', { timeLimitMs: 300 }),
        // Partial output first; the loop runs in a job whose rejection nobody observes.
        code: enc(`digicap.output('partial'); Promise.resolve().then(() => { for (;;) {} })`),
        input: enc('x'),
      },
      lifecycle,
    }).then(
      (r) => ({ result: r.result }),
      (e: unknown) => ({ error: e }),
    )
    expect(outcome).toMatchObject({ error: { code: 'SANDBOX_TIMEOUT' } })
    expect(runs).toHaveLength(1)
    expect(runs[0]).toMatchObject({
      ok: false,
      errorCode: 'SANDBOX_TIMEOUT',
      outputBytes: undefined,
    })
  })

  it('a failing after-load listener stops the run before any code runs (SANDBOX_LIFECYCLE)', async () => {
    const lifecycle = runLifecycle()
    let ran = false
    lifecycle.on('after-load', () => {
      throw new Error('PCR extend failed')
    })
    const sandbox = dataSandbox(() => {
      ran = true
      return 'x'
    })
    let report: CleanupReport | undefined
    lifecycle.on('after-cleanup', (e) => {
      report = e.report
    })
    await expect(
      runInSandbox({
        sandbox,
        lifecycle,
        job: { runtime: runtime('data'), code: new Uint8Array(0), input: enc('p') },
      }),
    ).rejects.toMatchObject({ code: 'SANDBOX_LIFECYCLE' })
    expect(ran).toBe(false)
    expect(report?.buffersZeroed).toBe(1) // the input; the empty code buffer has nothing to zero
  })

  it('a WASI run creates no file at all, no handle stays open, and the input copies are zeroed', async () => {
    const before = await readdir(tmpRoot)
    const handlesBefore = leakable()
    const ws = createRunWorkspace({ tmpRoot })
    const seenDirs: string[] = []
    const lifecycle = runLifecycle()
    lifecycle.on('after-run', async () => {
      // Mid-run: the module's files live in the worker's memory, not under any directory.
      for (const d of await readdir(tmpRoot)) seenDirs.push(d)
    })
    const input = new Uint8Array(70_000).fill(1)
    const { result, cleanup } = await runInSandbox({
      sandbox: wasiSandbox(),
      workspace: ws,
      lifecycle,
      job: { runtime: runtime('wasi'), code: wat('sum-input.wat'), input },
    })
    expect(result.output.byteLength).toBe(8)
    expect(seenDirs).toEqual(before)
    expect(await readdir(tmpRoot)).toEqual(before)
    expect(cleanup).toMatchObject({ filesRemoved: 0, dirsRemoved: 0, tempRoots: [] })
    // job.input and the worker's shared view of it, plus what the worker zeroed itself.
    expect(cleanup.bytesZeroed).toBeGreaterThanOrEqual(2 * 70_000)
    expect(input.every((b) => b === 0)).toBe(true)
    expect(leakable()).toEqual(handlesBefore)
  })

  it('after a failed WASI run (timeout kill) the temp dir is gone too', async () => {
    const before = await readdir(tmpRoot)
    const handlesBefore = leakable()
    await expect(
      runInSandbox({
        sandbox: wasiSandbox(),
        workspace: createRunWorkspace({ tmpRoot }),
        job: {
          runtime: runtime('wasi', { timeLimitMs: 200 }),
          code: wat('loop-forever.wat'),
          input: enc('x'),
        },
      }),
    ).rejects.toMatchObject({ code: 'SANDBOX_TIMEOUT' })
    expect(await readdir(tmpRoot)).toEqual(before)
    expect(leakable()).toEqual(handlesBefore)
  })

  it('a symlink the module plants to a host file is neither followed by the module nor by clean-up', async () => {
    const canary = join(tmpRoot, 'canary')
    await writeFile(canary, 'canary')
    const before = (await readdir(tmpRoot)).sort()
    const { result } = await runInSandbox({
      sandbox: wasiSandbox(),
      workspace: createRunWorkspace({ tmpRoot }),
      job: { runtime: runtime('wasi'), code: wat('escape-symlink.wat'), input: enc('x') },
    })
    const dv = new DataView(result.output.buffer, result.output.byteOffset)
    const [symlinkErrno, openErrno, writeErrno] = [0, 4, 8].map((o) => dv.getUint32(o, true))
    // The in-memory file system has no symlinks at all…
    expect(symlinkErrno).not.toBe(0)
    // …so the open fails and nothing is written.
    expect(openErrno).not.toBe(0)
    expect(writeErrno).toBe(0xffff)
    // Clean-up removed the link without following it: the canary is intact.
    expect(await readFile(canary, 'utf8')).toBe('canary')
    expect((await readdir(tmpRoot)).sort()).toEqual(before)
    await rm(canary)
  })

  it('a sandbox without a workspace leaves nothing behind', async () => {
    const before = await readdir(tmpRoot)
    await wasiSandbox().run({
      runtime: runtime('wasi'),
      code: wat('sum-input.wat'),
      input: enc('ab'),
    })
    expect(await readdir(tmpRoot)).toEqual(before)
  })

  it('clean-up removes a file above maxOverwriteBytes without overwriting it, and says so', async () => {
    const ws = createRunWorkspace({ tmpRoot, maxOverwriteBytes: 10 })
    const dir = await ws.tempDir('big-')
    await writeFile(join(dir, 'small'), 'abc')
    await writeFile(join(dir, 'large'), 'x'.repeat(100))
    const report = await ws.dispose()
    expect(report).toMatchObject({ filesRemoved: 2, dirsRemoved: 1, fileBytesOverwritten: 3 })
    expect(report.failures).toEqual(['file of 100 bytes removed without overwriting'])
  })

  it('a tracked public file (the fetched ciphertext) is removed without overwriting, whatever its size, and that is no failure', async () => {
    const ws = createRunWorkspace({ tmpRoot, maxOverwriteBytes: 10 })
    const dir = await ws.tempDir('ciphertext-')
    const path = join(dir, 'capsule.bin')
    await writeFile(path, 'c'.repeat(100))
    ws.trackFile(path, { overwrite: false })
    const held = await open(path, 'r')
    try {
      const report = await ws.dispose()
      expect(report).toMatchObject({ filesRemoved: 1, dirsRemoved: 1, fileBytesOverwritten: 0 })
      expect(report.failures).toEqual([])
      expect(existsSync(path)).toBe(false)
      // Not overwritten: the bytes are the ones anyone can fetch by the CID anyway.
      expect((await held.readFile()).toString()).toBe('c'.repeat(100))
    } finally {
      await held.close()
    }
  })

  it('dispose is idempotent and reports nothing the second time', async () => {
    const ws = createRunWorkspace({ tmpRoot })
    await ws.tempDir('x-')
    const first = await ws.dispose()
    expect(first.dirsRemoved).toBe(1)
    const second = await ws.dispose()
    expect(second).toMatchObject({
      filesRemoved: 0,
      dirsRemoved: 0,
      buffersZeroed: 0,
      handlesClosed: 0,
    })
    expect(ws.disposed).toBe(true)
  })
})

describe('no handle outlives a run', () => {
  it('a plain Node process runs quickjs and wasi jobs (ok, killed, prewarmed), then exits on its own', async () => {
    const script = new URL('./scripts/handles-after-runs.ts', import.meta.url).pathname
    const report = join(tmpRoot, 'handles.json')
    const args = [
      '--disable-warning=ExperimentalWarning',
      script,
      Buffer.from(wat('sum-input.wat')).toString('base64'),
      Buffer.from(wat('loop-forever.wat')).toString('base64'),
      report,
    ]
    await new Promise<void>((resolve, reject) => {
      // stdio ignored: no pipes of its own; the timeout fails the test if anything keeps it alive.
      const child = spawn(process.execPath, args, { stdio: 'ignore', timeout: 50_000 })
      child.on('error', reject)
      child.on('exit', (code, signal) =>
        code === 0 ? resolve() : reject(new Error(`exit ${code} ${signal}`)),
      )
    })
    const out = JSON.parse(await readFile(report, 'utf8'))
    await rm(report)
    expect(out.codes).toEqual([
      'ok',
      'SANDBOX_TIMEOUT',
      'ok',
      'SANDBOX_TIMEOUT',
      'ok',
      'SANDBOX_TIMEOUT',
      'ok',
      'ok',
    ])
    // Everything closed: nothing active at all (the unclosed prewarmed spare is unref'd).
    expect(out.resources).toEqual([])
  })
})

describe('examples/aggregate', () => {
  it('computes count/mean/median/min/max of the example CSV inside QuickJS', async () => {
    const code = await readFile(new URL('../examples/aggregate/main.js', import.meta.url))
    const data = await readFile(new URL('../examples/aggregate/data.csv', import.meta.url))
    const r = await quickjsSandbox().run({
      runtime: runtime('quickjs', { timeLimitMs: 5000 }),
      code,
      input: data,
    })
    const out = JSON.parse(dec(r.output)) as {
      rows: number
      stats: Record<
        string,
        { count: number; mean: number; median: number; min: number; max: number }
      >
    }
    expect(out.rows).toBe(60)
    expect(Object.keys(out.stats)).toEqual(['hour', 'temperature_c', 'humidity_pct', 'pm25'])
    // Recompute in the host for one column.
    const hum = dec(data)
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split(',')[3]))
      .sort((a, b) => a - b)
    expect(out.stats.humidity_pct).toMatchObject({
      count: 60,
      min: hum[0],
      max: hum[59],
      median: (hum[29]! + hum[30]!) / 2,
    })
    expect(r.logs).toEqual(['rows: 60, numeric columns: 4'])
  })
})
