import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createRunWorkspace, type SandboxJob, wasiSandbox } from '../src/index.ts'
import { dec, runtime, wat } from './helpers.ts'

const sum = wat('sum-input.wat')
const job = (code: Uint8Array, over: Partial<SandboxJob> = {}): SandboxJob => ({
  runtime: runtime('wasi', { memoryLimitBytes: 1024 * 1024 }),
  code,
  input: new Uint8Array([1, 2, 3, 250]),
  ...over,
})
const u32s = (b: Uint8Array) =>
  Array.from({ length: b.byteLength >> 2 }, (_, i) =>
    new DataView(b.buffer, b.byteOffset).getUint32(i * 4, true),
  )

// Fresh worker per run, and a prewarmed spare: both must behave the same.
describe.each([
  ['fresh workers', false],
  ['prewarmed spare', true],
])('wasi sandbox (%s)', (_label, prewarm) => {
  const sandbox = wasiSandbox({
    outputLimitBytes: 256 * 1024,
    diskLimitBytes: 1024 * 1024,
    prewarm,
  })
  afterAll(() => sandbox.close())

  async function stillWorks(): Promise<void> {
    const r = await sandbox.run(job(sum))
    expect(u32s(r.output)).toEqual([4, 256])
  }

  async function expectCode(code: Uint8Array, expected: string, over: Partial<SandboxJob> = {}) {
    const err = await sandbox.run(job(code, over)).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toMatchObject({ code: expected })
    await stillWorks()
    return err as { details: Record<string, unknown> }
  }

  it('reads /input and writes stdout as the output', async () => {
    const input = new Uint8Array(200_000).map((_, i) => i & 0xff)
    const r = await sandbox.run(job(sum, { input }))
    const expected = input.reduce((a, b) => a + b, 0)
    expect(u32s(r.output)).toEqual([200_000, expected])
    expect(r.stats.memoryPeakBytes).toBe(2 * 65536)
  })

  it('cannot leave its directory, see the environment, or open sockets', async () => {
    const r = await sandbox.run(job(wat('escape.wat'), { args: ['--flag'] }))
    const [abs, dotdot, inputDotdot, symlink, viaLink, otherFd, sock, envCount, argCount, sibling] =
      u32s(r.output)
    expect(abs).not.toBe(0) // "/etc/passwd"
    expect(dotdot).not.toBe(0) // "../../../../etc/passwd"
    expect(inputDotdot).not.toBe(0) // "input/../../etc/passwd"
    expect(symlink).not.toBe(0) // symlink to an absolute path is refused
    expect(viaLink).not.toBe(0)
    expect(otherFd).toBe(8) // EBADF: fd 4 is no preopen
    expect(sock).not.toBe(0)
    expect(envCount).toBe(0)
    expect(argCount).toBe(2) // entry name + the one job arg
    expect(sibling).not.toBe(0) // "../stdout" sits beside the preopen on the host
    expect(r.output.byteLength).toBe(40) // nothing but the errno table
  })

  it('proc_exit(0) is success and keeps what was written', async () => {
    const r = await sandbox.run(job(wat('exit-code.wat', { 'i32.const EXIT_CODE': 'i32.const 0' })))
    expect(dec(r.output)).toBe('bye')
  })

  it('proc_exit(3) is SANDBOX_CRASH with the exit code', async () => {
    const err = await expectCode(
      wat('exit-code.wat', { 'i32.const EXIT_CODE': 'i32.const 3' }),
      'SANDBOX_CRASH',
    )
    expect(err.details.exitCode).toBe(3)
  })

  it('an endless loop is stopped at the deadline: SANDBOX_TIMEOUT', async () => {
    const err = await expectCode(wat('loop-forever.wat'), 'SANDBOX_TIMEOUT', {
      runtime: runtime('wasi', { timeLimitMs: 300 }),
    })
    expect(err.details.enforcedBy).toBe('host')
  })

  it('a start function that never returns is stopped at the time limit, not the start-up timeout', async () => {
    const t0 = performance.now()
    const err = await expectCode(wat('start-loop.wat'), 'SANDBOX_TIMEOUT', {
      runtime: runtime('wasi', { timeLimitMs: 300 }),
    })
    expect(err.details).toMatchObject({ timeLimitMs: 300, enforcedBy: 'host' })
    // the start-up timeout is 10 s
    expect(performance.now() - t0).toBeLessThan(5000)
  })

  it('unbounded memory.grow hits the cap: SANDBOX_MEMORY', async () => {
    const err = await expectCode(wat('grow-memory.wat'), 'SANDBOX_MEMORY')
    expect(err.details.memoryBytes).toBe(1024 * 1024)
  })

  it('a module whose minimum memory exceeds the limit is refused: SANDBOX_MEMORY', async () => {
    await expectCode(wat('sum-input.wat'), 'SANDBOX_MEMORY', {
      runtime: runtime('wasi', { memoryLimitBytes: 65536 }),
    })
  })

  it('flooding stdout is stopped at the output limit: SANDBOX_OUTPUT_LIMIT', async () => {
    const err = await expectCode(wat('stdout-flood.wat'), 'SANDBOX_OUTPUT_LIMIT')
    expect(err.details.outputLimitBytes).toBe(256 * 1024)
  })

  it('filling the disk is stopped at the disk limit: SANDBOX_OUTPUT_LIMIT', async () => {
    const err = await expectCode(wat('disk-flood.wat'), 'SANDBOX_OUTPUT_LIMIT')
    expect(err.details.diskLimitBytes).toBe(1024 * 1024)
  })

  it('growing a file to 1 TiB (sparse) is stopped before it happens: SANDBOX_OUTPUT_LIMIT', async () => {
    const err = await expectCode(wat('truncate-huge.wat'), 'SANDBOX_OUTPUT_LIMIT')
    expect(err.details.diskLimitBytes).toBe(1024 * 1024)
  })

  it('creating entries without bound is stopped: SANDBOX_OUTPUT_LIMIT', async () => {
    const err = await expectCode(wat('mkdir-loop.wat'), 'SANDBOX_OUTPUT_LIMIT')
    expect(err.details.diskLimitBytes).toBe(1024 * 1024)
  })

  it('a path over 4096 bytes is ENAMETOOLONG in every path call, and name bytes count against the disk limit', async () => {
    const long = await sandbox.run(job(wat('long-names.wat', { NAME_LEN: '4097', COUNT: '3' })))
    // path_open (last errno, successes), path_create_directory, path_filestat_get,
    // path_unlink_file, path_rename: all ENAMETOOLONG (37), nothing made
    expect(u32s(long.output)).toEqual([37, 0, 37, 37, 37, 37])
    // 4096-byte names are allowed, and each costs its bytes on top of the 4 KiB entry: 200 of
    // them (200 × 8 KiB) do not fit the 1 MiB disk limit
    const few = await sandbox.run(job(wat('long-names.wat', { NAME_LEN: '4096', COUNT: '3' })))
    expect(u32s(few.output).slice(0, 2)).toEqual([0, 3])
    const err = await expectCode(
      wat('long-names.wat', { NAME_LEN: '4096', COUNT: '200' }),
      'SANDBOX_OUTPUT_LIMIT',
    )
    expect(err.details.diskLimitBytes).toBe(1024 * 1024)
  })

  it('an unknown WASI import answers ENOSYS, also one named like an Object.prototype member', async () => {
    const r = await sandbox.run(job(wat('imports-prototype.wat')))
    expect(u32s(r.output)).toEqual([52])
  })

  it('a module importing non-WASI functions is refused: SANDBOX_RUNTIME_UNSUPPORTED', async () => {
    const err = await expectCode(wat('imports-env.wat'), 'SANDBOX_RUNTIME_UNSUPPORTED')
    expect(err.details.import).toBe('env.get_secret')
  })

  it.each([
    ['not wasm', new TextEncoder().encode('console.log(1)')],
    ['truncated', sum.subarray(0, sum.byteLength - 5)],
    ['empty', new Uint8Array(0)],
  ])('%s code is refused: SANDBOX_RUNTIME_UNSUPPORTED', async (_n, code) => {
    await expectCode(code, 'SANDBOX_RUNTIME_UNSUPPORTED')
  })
})

describe('wasi time limit: no system call outlives the deadline', () => {
  const sandbox = wasiSandbox()
  afterAll(() => sandbox.close())
  const sleep = (ns: string) => wat('sleep.wat', { SLEEP_NS: ns })

  it('a short poll_oneoff sleep works: the program resumes and writes its output', async () => {
    const t0 = performance.now()
    const r = await sandbox.run(job(sleep('50000000'))) // 50 ms under 1 s
    expect(dec(r.output)).toBe('slept')
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45)
  })

  it('a 20 s poll_oneoff sleep under a 1 s limit settles with SANDBOX_TIMEOUT by the deadline, workspace wiped', async () => {
    const input = new Uint8Array(100_000).fill(7)
    const ws = createRunWorkspace()
    const t0 = performance.now()
    const err = await sandbox
      .run(job(sleep('20000000000'), { input, runtime: runtime('wasi', { timeLimitMs: 1000 }) }), {
        workspace: ws,
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    const elapsed = performance.now() - t0
    expect(err).toMatchObject({ code: 'SANDBOX_TIMEOUT' })
    // The deadline plus worker start-up and a loaded machine's margin (the sleep asks for 20 s).
    expect(elapsed).toBeLessThan(1000 + 5000)
    const report = await ws.dispose()
    // The worker's view of the decrypted input (a shared buffer) is zeroed by the workspace.
    expect(report.bytesZeroed).toBeGreaterThanOrEqual(input.byteLength)
    expect(report.tempRoots).toEqual([])
    expect(report.failures).toEqual([])
  }, 30_000)

  it('poll_oneoff on a descriptor and a long clock returns at once with the descriptor ready', async () => {
    const t0 = performance.now()
    const r = await sandbox.run(
      job(wat('poll-mixed.wat'), { runtime: runtime('wasi', { timeLimitMs: 5000 }) }),
    )
    // errno 0, one event: userdata 2 (stdin), error 0, type 1 (fd_read); the 60 s clock never slept
    expect(u32s(r.output)).toEqual([0, 1, 2, 0, 1])
    expect(performance.now() - t0).toBeLessThan(5000)
  })

  it('a busy loop with no system call is still terminated by the host at the deadline', async () => {
    const t0 = performance.now()
    await expect(
      sandbox.run(job(wat('loop-forever.wat'), { runtime: runtime('wasi', { timeLimitMs: 500 }) })),
    ).rejects.toMatchObject({ code: 'SANDBOX_TIMEOUT', details: { enforcedBy: 'host' } })
    expect(performance.now() - t0).toBeLessThan(500 + 5000)
  })
})

describe('wasi file system: in memory only', () => {
  it('files the module creates under /out work (create, write in 4 KiB pieces, seek, read back)', async () => {
    const sandbox = wasiSandbox()
    try {
      const input = new Uint8Array(1024 * 1024 + 123).map((_, i) => (i * 31) & 0xff)
      const r = await sandbox.run(job(wat('write-out.wat'), { input }))
      expect(r.output).toEqual(input)
    } finally {
      await sandbox.close()
    }
  })

  it('a write at a far offset counts its gap against the disk limit: SANDBOX_OUTPUT_LIMIT', async () => {
    const sandbox = wasiSandbox({ diskLimitBytes: 1024 * 1024 })
    try {
      // write-out.wat with the first write preceded by a seek to 512 MiB
      const far = wat('write-out.wat', {
        '(call $copy (local.get $in) (local.get $out))':
          '(drop (call $fd_seek (local.get $out) (i64.const 536870912) (i32.const 0) (i32.const 48))) (call $copy (local.get $in) (local.get $out))',
      })
      await expect(sandbox.run(job(far))).rejects.toMatchObject({
        code: 'SANDBOX_OUTPUT_LIMIT',
        details: { diskLimitBytes: 1024 * 1024 },
      })
    } finally {
      await sandbox.close()
    }
  })
})

describe('wasi host process', () => {
  it('a module growing a funcref table stops at the table cap (10 000 entries) and the host lives (it used to abort, SIGABRT)', async () => {
    const script = new URL('./scripts/run-one-job.ts', import.meta.url).pathname
    const dir = await mkdtemp(join(tmpdir(), 'wasi-table-'))
    try {
      const outputs: unknown[] = []
      for (const growBy of [1_000_000, 1000]) {
        const file = join(dir, `grow-${growBy}.wasm`)
        await writeFile(file, wat('table-grow.wat', { GROW_BY: String(growBy) }))
        // its own process: a regression aborts the child, which fails here, not the test runner
        const r = spawnSync(
          process.execPath,
          ['--disable-warning=ExperimentalWarning', script, 'wasi', file, '2000', String(1 << 20)],
          { encoding: 'utf8', timeout: 45_000 },
        )
        expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null })
        const out = JSON.parse(r.stdout)
        outputs.push(out.ok ? Buffer.from(out.output, 'hex').readUInt32LE(0) : out)
      }
      // a grow past the cap fails inside the module (-1): none of 1 000 000, 10 of 1 000
      expect(outputs).toEqual([0, 10_000])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 120_000)

  it('a module using wasm GC arrays is refused before it runs (SANDBOX_RUNTIME_UNSUPPORTED); it used to abort the host (SIGABRT)', async () => {
    const script = new URL('./scripts/run-one-job.ts', import.meta.url).pathname
    const dir = await mkdtemp(join(tmpdir(), 'wasi-gc-'))
    try {
      const file = join(dir, 'gc.wasm')
      await writeFile(file, gcArrayFlood())
      const r = spawnSync(
        process.execPath,
        ['--disable-warning=ExperimentalWarning', script, 'wasi', file, '10000', String(16 << 20)],
        { encoding: 'utf8', timeout: 45_000 },
      )
      expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null })
      expect(JSON.parse(r.stdout)).toMatchObject({
        ok: false,
        code: 'SANDBOX_RUNTIME_UNSUPPORTED',
        details: { reason: 'GC types are not supported' },
      })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it('after an endless poll_oneoff sleep the run times out, nothing touches the disk, and the process exits on its own', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'wasi-tmpdir-'))
    const report = join(tmp, '..', `${basename(tmp)}.json`)
    const script = new URL('./scripts/wasi-sleep-exit.ts', import.meta.url).pathname
    // Two watches: TMPDIR (a private empty directory: nothing may appear in it), and every
    // file the child process holds open (/proc/<pid>/fd): none may be on the tmpfs or in a
    // temp directory. /dev/shm itself is shared with other processes, so its listing
    // cannot be attributed to the child.
    const seen = new Set<string>()
    let pid: number | undefined
    // The repository itself may sit under /tmp (CI clones there): the code the child loads
    // from it is not a file the run made, and neither is the report it writes when done.
    const repoRoot = new URL('../../../', import.meta.url).pathname
    const onDisk = (p: string) =>
      !p.startsWith(repoRoot) &&
      p !== report &&
      (p.startsWith('/dev/shm/') || p.startsWith(`${tmpdir()}/`))
    const watch = async () => {
      for (const name of await readdir(tmp).catch(() => [] as string[])) seen.add(name)
      if (pid === undefined) return
      for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
        const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
        if (onDisk(target)) seen.add(target)
      }
    }
    const poller = setInterval(() => void watch(), 5)
    try {
      const exit = await new Promise<{ code: number | null; signal: string | null }>(
        (resolve, reject) => {
          const child = spawn(
            process.execPath,
            [
              '--disable-warning=ExperimentalWarning',
              script,
              Buffer.from(wat('sleep.wat', { SLEEP_NS: '-1' })).toString('base64'),
              Buffer.from(wat('write-out.wat')).toString('base64'),
              report,
            ],
            // TMPDIR points at a watched empty directory; the timeout fails the test (SIGTERM)
            // if the process cannot exit.
            { stdio: 'ignore', timeout: 45_000, env: { ...process.env, TMPDIR: tmp } },
          )
          pid = child.pid
          child.on('error', reject)
          child.on('exit', (code, signal) => resolve({ code, signal }))
        },
      )
      expect(exit).toEqual({ code: 0, signal: null })
      await watch()
      const out = JSON.parse(await readFile(report, 'utf8'))
      expect(out.codes).toEqual(['SANDBOX_TIMEOUT', 'ok'])
      expect(out.elapsedMs[0]).toBeLessThan(500 + 5000)
      expect(out.cleanup.map((c: { tempRoots: string[] }) => c.tempRoots)).toEqual([[], []])
      expect([...seen]).toEqual([]) // no file, in TMPDIR, on the tmpfs or in /tmp
    } finally {
      clearInterval(poller)
      await rm(tmp, { recursive: true, force: true })
      await rm(report, { force: true })
    }
  }, 60_000)
})

/**
 * A WASI-shaped module (wabt cannot write wasm GC, so the bytes are assembled here) that fills an
 * externref table with 100 MB GC arrays: `array.new_default` in a loop. GC objects live in the
 * worker's V8 heap, not in linear memory; on reaching the worker's heap limit V8 aborted the
 * whole process.
 */
function gcArrayFlood(): Uint8Array {
  const leb = (n: number) => {
    const o: number[] = []
    do {
      let b = n & 0x7f
      n = Math.floor(n / 128)
      if (n) b |= 0x80
      o.push(b)
    } while (n)
    return o
  }
  const sec = (id: number, body: number[]) => [id, ...leb(body.length), ...body]
  const name = (s: string) => [...leb(s.length), ...Buffer.from(s)]
  const body = [
    ...[1, 1, 0x7f], // one i32 local
    ...[0x03, 0x40], // loop
    ...[0x20, 0x00, 0x41, 0xc0, 0xf0, 0xf5, 0x0b], // local.get 0, i32.const 25 000 000
    ...[0xfb, 0x07, 0x00, 0xfb, 0x1b, 0x26, 0x00], // array.new_default 0, extern.convert_any, table.set 0
    ...[0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00, 0x0c, 0x00], // local += 1, br 0
    ...[0x0b, 0x0b],
  ]
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...sec(1, [2, 0x5e, 0x7f, 0x01, 0x60, 0x00, 0x00]), // (array (mut i32)), (func)
    ...sec(3, [1, 1]),
    ...sec(4, [1, 0x6f, 0x00, ...leb(10_000)]), // (table 10000 externref)
    ...sec(5, [1, 0x00, 1]),
    ...sec(7, [2, ...name('memory'), 2, 0, ...name('_start'), 0, 0]),
    ...sec(10, [1, ...leb(body.length), ...body]),
  ])
}
