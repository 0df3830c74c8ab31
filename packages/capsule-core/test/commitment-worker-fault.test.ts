/**
 * Fault injection: the commitment worker dies. `openFile` must fail closed with
 * CAPSULE_INTEGRITY (reason `commitment-worker`) and leave no output behind.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { openFileWith } from '../src/file.ts'
import { build, DATA_KEY, detBytes } from './fixtures.ts'

vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>()
  class DyingWorker extends real.Worker {
    constructor(_source: string, options: import('node:worker_threads').WorkerOptions) {
      super('process.exit(3)', { ...options, eval: true })
    }
  }
  return { ...real, Worker: DyingWorker }
})

const tmp = mkdtempSync(join(tmpdir(), 'digicap-worker-fault-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('commitment worker failure', () => {
  it.each([1, 40])('%i chunk(s): fails closed with CAPSULE_INTEGRITY', async (chunks) => {
    const { capsule } = build(detBytes(`fault ${chunks}`, chunks * 256 - 7), 256)
    const input = join(tmp, `c${chunks}.capsule`)
    writeFileSync(input, capsule)
    const err = await openFileWith(
      { input, output: join(tmp, `c${chunks}.out`), dataKey: DATA_KEY },
      'worker',
    ).catch((e: unknown) => e)
    expect(err).toMatchObject({
      code: 'CAPSULE_INTEGRITY',
      details: { reason: 'commitment-worker', exitCode: 3 },
    })
    expect(readdirSync(tmp).sort()).toEqual([input.slice(tmp.length + 1)])
    rmSync(input)
  })
})
