/**
 * Fault injection: the lane workers die. Every file helper must fail closed with
 * CAPSULE_INTEGRITY (reason `lane-worker`) and leave no output behind.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { laneFaults, lanePool } from '../src/file/lanes.ts'
import {
  commitAndSealFile,
  commitPlaintextFile,
  openFile,
  sealFile,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, build, CAPSULE_ID, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'

/** How the test's workers misbehave (read by the mocked `Worker`). */
interface WorkerFault {
  /** Exit with this code as soon as the worker starts: 3 (a crash), 0 (an exit nobody asked for). */
  exitCode?: number
  /** Do the job, then at its end exit without the `zeroed` answer. */
  noAnswer?: boolean
  /** The n-th worker made (from 1) cannot be made: `new Worker` throws, as with no thread left. */
  failToMake?: number
  /** Workers made since this fault was set. */
  made?: number
}
const fault = (): WorkerFault =>
  (globalThis as { laneWorkerFault?: WorkerFault }).laneWorkerFault ?? {}
const setFault = (f: WorkerFault) => {
  ;(globalThis as { laneWorkerFault?: WorkerFault }).laneWorkerFault = f
}

vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>()
  class FaultyWorker extends real.Worker {
    constructor(source: string, options: import('node:worker_threads').WorkerOptions) {
      const f = fault()
      f.made = (f.made ?? 0) + 1
      if (f.failToMake === f.made) {
        throw Object.assign(new Error('no thread left'), { code: 'ERR_WORKER_INIT_FAILED' })
      }
      const code = f.noAnswer
        ? source.replace("parentPort.postMessage('zeroed')", 'process.exit(0)')
        : `process.exit(${f.exitCode ?? 3})`
      super(code, { ...options, eval: true })
    }
  }
  return { ...real, Worker: FaultyWorker }
})

const tmp = mkdtempSync(join(tmpdir(), 'digicap-worker-fault-'))
// The calling thread waits for each worker to be up or gone before it takes a chunk: these jobs
// are small enough to be done before a worker boots, and a worker stopped while booting (no key,
// no chunk) is not a failure. Here every worker's fault meets work.
beforeAll(() => {
  laneFaults.waitForWorkers = true
})
afterAll(() => {
  laneFaults.waitForWorkers = undefined
  rmSync(tmp, { recursive: true, force: true })
})

describe('lane worker failure', () => {
  // The worker dies as it starts (before or after it is handed the key and its chunks).
  it.each([
    [2, 3],
    [40, 3],
    [2, 0],
    [40, 0],
  ])('%i chunks, a worker that exits with code %i: every file helper fails closed', async (chunks, exitCode) => {
    setFault({ exitCode })
    const failedClosed = { code: 'CAPSULE_INTEGRITY', details: { reason: 'lane-worker', exitCode } }
    const built = build(detBytes(`fault ${chunks}`, chunks * 256 - 7), 256)
    const capsule = join(tmp, `c${chunks}-${exitCode}.capsule`)
    const plain = join(tmp, `c${chunks}-${exitCode}.bin`)
    writeFileSync(capsule, built.capsule)
    writeFileSync(plain, built.plaintext)
    const keep = readdirSync(tmp).sort()

    const open = await openFile({
      input: capsule,
      output: join(tmp, `c${chunks}.out`),
      dataKey: DATA_KEY,
      threads: 2,
    }).catch((e: unknown) => e)
    expect(open).toMatchObject(failedClosed)

    const seal = await sealFile({
      header: built.header,
      signature: built.signature,
      dataKey: DATA_KEY,
      input: plain,
      output: join(tmp, `c${chunks}.resealed`),
      threads: 2,
    }).catch((e: unknown) => e)
    expect(seal).toMatchObject(failedClosed)

    const commit = await commitPlaintextFile(plain, DATA_KEY, CAPSULE_ID, {
      chunkSize: 256,
      threads: 2,
    }).catch((e: unknown) => e)
    expect(commit).toMatchObject(failedClosed)

    const onePass = await commitAndSealFile({
      ...BASE,
      dataKey: DATA_KEY,
      chunkSize: 256,
      sign: (header) => signCapsuleHeader(header, OWNER_KEY),
      input: plain,
      output: join(tmp, `c${chunks}.onepass`),
      threads: 2,
    }).catch((e: unknown) => e)
    expect(onePass).toMatchObject(failedClosed)

    expect(readdirSync(tmp).sort()).toEqual(keep)
    rmSync(capsule)
    rmSync(plain)
  })

  it('a worker that does its chunks but ends without saying it zeroed its key fails the job closed', async () => {
    setFault({ noAnswer: true })
    const built = build(detBytes('no answer', 40 * 256 - 7), 256)
    const capsule = join(tmp, 'no-answer.capsule')
    writeFileSync(capsule, built.capsule)
    const keep = readdirSync(tmp).sort()
    const open = await openFile({
      input: capsule,
      output: join(tmp, 'no-answer.out'),
      dataKey: DATA_KEY,
      threads: 2,
    }).catch((e: unknown) => e)
    expect(open).toMatchObject({
      code: 'CAPSULE_INTEGRITY',
      details: { reason: 'lane-worker', exitCode: 0 },
    })
    expect(readdirSync(tmp).sort()).toEqual(keep)
    rmSync(capsule)
  })

  it('a worker that cannot be made fails the job closed, and the one already booting is parked without the key', async () => {
    // three lanes: the calling thread, a worker that boots, and a second that cannot be made
    setFault({ failToMake: 2, noAnswer: true })
    const built = build(detBytes('no thread', 40 * 256 - 7), 256)
    const plain = join(tmp, 'no-thread.bin')
    writeFileSync(plain, built.plaintext)
    const keep = readdirSync(tmp).sort()
    const seal = await commitAndSealFile({
      ...BASE,
      dataKey: DATA_KEY,
      chunkSize: 256,
      sign: (header) => signCapsuleHeader(header, OWNER_KEY),
      input: plain,
      output: join(tmp, 'no-thread.capsule'),
      threads: 3,
    }).catch((e: unknown) => e)
    expect(seal).toMatchObject({
      code: 'CAPSULE_INTEGRITY',
      details: { reason: 'lane-worker' },
      cause: { code: 'ERR_WORKER_INIT_FAILED' },
    })
    expect(readdirSync(tmp).sort()).toEqual(keep)
    // the first worker, still booting, was given nothing: it waits parked for another job
    const parked = lanePool.take(5)
    expect(parked).toHaveLength(1)
    await Promise.all(parked.map(({ worker }) => worker.terminate()))
    rmSync(plain)
  })

  it('a one-chunk job starts no worker: it runs on the calling thread alone', async () => {
    const built = build(detBytes('fault one', 200), 256)
    const capsule = join(tmp, 'one.capsule')
    writeFileSync(capsule, built.capsule)
    const output = join(tmp, 'one.out')
    await openFile({ input: capsule, output, dataKey: DATA_KEY, threads: 2 })
    expect(readdirSync(tmp)).toContain('one.out')
    rmSync(capsule)
    rmSync(output)
  })
})
