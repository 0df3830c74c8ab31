import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createRunWorkspace, type SandboxJob, secretTmpRoot, wasiSandbox } from '../src/index.ts'
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

describe('wasi preopened directory', () => {
  it('is made on a tmpfs (/dev/shm when writable), not under the workspace root, and removed', async () => {
    const root = await mkdtemp(join(tmpdir(), 'wasi-ws-'))
    const warnings: string[] = []
    const sandbox = wasiSandbox({ warn: (m) => warnings.push(m) })
    try {
      const ws = createRunWorkspace({ tmpRoot: root })
      const r = await sandbox.run(job(sum), { workspace: ws })
      expect(u32s(r.output)).toEqual([4, 256])
      const report = await ws.dispose()
      const expected = secretTmpRoot()
      expect(report.tempRoots.length).toBe(1)
      expect(dirname(report.tempRoots[0] ?? '')).toBe(expected)
      if (expected === '/dev/shm') expect(warnings).toEqual([])
      else expect(warnings.length).toBe(1)
      expect(await readdir(root)).toEqual([])
    } finally {
      await sandbox.close()
      await rm(root, { recursive: true, force: true })
    }
  })
})
