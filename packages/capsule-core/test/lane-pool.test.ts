/**
 * Parked lane workers (`lane-pool.ts`): a worker serves job after job, a warm-up makes the next
 * job's workers ahead of it, and what a parked worker keeps is nothing secret. The workers are
 * real threads; the mocked `Worker` only counts them and hears what each says as it zeroes.
 */
import { spawnSync } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Worker as RealWorker } from 'node:worker_threads'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { LaneWorkerPool, lanePoolLimits } from '../src/file/lane-pool.ts'
import { laneFaults, lanePool, warmLanes } from '../src/file/lanes.ts'
import {
  commitPlaintextFile,
  createCapsuleHeader,
  MAX_FILE_THREADS,
  openFile,
  PARALLEL_FILE_MIN_BYTES,
  sealCapsule,
  sealFile,
  signCapsuleHeader,
  warmFileLanes,
} from '../src/index.ts'
import * as light from '../src/light.ts'
import { BASE, build, CAPSULE_ID, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'

/** What each worker said as it zeroed its state (one entry per job end). */
interface Probe {
  keyLength: number
  nonzero: boolean
}
interface Seen {
  made: RealWorker[]
  /** Workers whose thread has ended (seen whatever listeners the lanes left on them). */
  exited: Set<RealWorker>
  probes: Probe[]
  chunks: number
}
const seen = (): Seen => (globalThis as { laneSeen?: Seen }).laneSeen as Seen
;(globalThis as { laneSeen?: Seen }).laneSeen = {
  made: [],
  exited: new Set(),
  probes: [],
  chunks: 0,
}

vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>()
  // Before the worker says `zeroed`, it also reports what its key, chunk and plaintext buffers
  // hold at that moment (read from the real source's own `state`).
  const PROBE = `
const probePort = (typeof require === 'function' ? require : process.getBuiltinModule)('node:worker_threads').parentPort
const probePost = probePort.postMessage.bind(probePort)
probePort.postMessage = (m) => {
  if (m === 'zeroed') probePost({ probe: { keyLength: state.key.length, nonzero: state.key.some(Boolean) || state.buf.some(Boolean) || state.plain.some(Boolean) } })
  probePost(m)
}
`
  class SeenWorker extends real.Worker {
    constructor(source: string, options: import('node:worker_threads').WorkerOptions) {
      super(`${PROBE}${source}`, { ...options, eval: true })
      seen().made.push(this as unknown as RealWorker)
    }
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      const m = args[0] as { probe?: Probe; i?: number } | undefined
      if (event === 'message' && m?.probe) {
        seen().probes.push(m.probe)
        return true
      }
      if (event === 'message' && typeof m?.i === 'number') seen().chunks++
      if (event === 'exit') seen().exited.add(this as unknown as RealWorker)
      return super.emit(event, ...args)
    }
  }
  return { ...real, Worker: SeenWorker }
})

const tmp = mkdtempSync(join(tmpdir(), 'digicap-lane-pool-'))
const CHUNK = 256
const plain = detBytes('lane pool', 60 * CHUNK - 9)
const plainPath = join(tmp, 'plain.bin')
const saved = { ...lanePoolLimits }
let reference: Uint8Array

const commit = (threads: number) =>
  commitPlaintextFile(plainPath, DATA_KEY, CAPSULE_ID, { chunkSize: CHUNK, threads }).then(
    (c) => c.plaintextCommitment,
  )
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** A stand-in for a worker still booting: it comes up only when a test emits `online`. */
const bootingWorker = () => {
  const worker = Object.assign(new EventEmitter(), {
    ref() {},
    unref() {},
    terminated: 0,
    terminate() {
      worker.terminated++
      return Promise.resolve(1)
    },
  })
  return worker
}

beforeAll(async () => {
  writeFileSync(plainPath, plain)
  reference = await commit(1)
  // Workers take chunks as soon as they are up (these jobs would otherwise be done first).
  laneFaults.waitForWorkers = true
})
afterEach(async () => {
  Object.assign(lanePoolLimits, saved)
  await Promise.all(lanePool.take(10).map(({ worker }) => worker.terminate()))
  const s = seen()
  s.made = []
  s.exited.clear()
  s.probes = []
  s.chunks = 0
})
afterAll(() => {
  laneFaults.waitForWorkers = undefined
  rmSync(tmp, { recursive: true, force: true })
})

describe('parked lane workers', () => {
  it('one worker serves job after job, each with the right result', async () => {
    for (let r = 0; r < 4; r++) expect(await commit(2)).toEqual(reference)
    expect(seen().made).toHaveLength(1)
    expect(seen().chunks).toBeGreaterThan(0)
    expect(seen().probes).toHaveLength(4)
    expect(lanePool.size).toBe(1)
  })

  it('after a keyed job, the parked worker held the key copy and zeroed it, and its buffers', async () => {
    const built = build(plain, CHUNK)
    const sealed = join(tmp, 'sealed.capsule')
    await sealFile({
      header: built.header,
      signature: built.signature,
      dataKey: DATA_KEY,
      input: plainPath,
      output: sealed,
      threads: 2,
    })
    expect(readFileSync(sealed)).toEqual(Buffer.from(built.capsule))
    const opened = join(tmp, 'opened.bin')
    await openFile({ input: sealed, output: opened, dataKey: DATA_KEY, threads: 2 })
    expect(readFileSync(opened)).toEqual(Buffer.from(plain))
    // one worker did chunks of both jobs; at each end it had a 32-byte key and kept no byte of it
    expect(seen().made).toHaveLength(1)
    expect(seen().probes).toEqual([
      { keyLength: 32, nonzero: false },
      { keyLength: 32, nonzero: false },
    ])
  })

  it('a reused worker seals each job under that job’s key, not the one before', async () => {
    const otherKey = detBytes('lane pool other data key', 32)
    const header = createCapsuleHeader({
      ...BASE,
      capsuleId: detBytes('lane pool other capsule', 32),
      chunkSize: CHUNK,
      dataKey: otherKey,
      plaintext: plain,
    })
    const signature = signCapsuleHeader(header, OWNER_KEY)
    const jobs = [
      { ...build(plain, CHUNK), dataKey: DATA_KEY },
      {
        header,
        signature,
        capsule: sealCapsule({ header, signature, dataKey: otherKey, plaintext: plain }),
        dataKey: otherKey,
      },
    ]
    const chunksBefore: number[] = []
    for (const [n, job] of jobs.entries()) {
      chunksBefore.push(seen().chunks)
      const output = join(tmp, `keyed-${n}.capsule`)
      await sealFile({ ...job, input: plainPath, output, threads: 2 })
      expect(readFileSync(output)).toEqual(Buffer.from(job.capsule))
      // the worker sealed chunks of this job
      expect(seen().chunks).toBeGreaterThan(chunksBefore[n] as number)
    }
    expect(seen().made).toHaveLength(1)
  })

  it('a worker that served many jobs carries none of their listeners', async () => {
    const warnings: Error[] = []
    const onWarning = (w: Error) => warnings.push(w)
    process.on('warning', onWarning)
    try {
      for (let r = 0; r < 12; r++) expect(await commit(2)).toEqual(reference)
    } finally {
      process.off('warning', onWarning)
    }
    expect(warnings).toEqual([])
    const [worker] = seen().made
    expect(seen().made).toHaveLength(1)
    // parked: only the pool's own `error` and `exit` watch remain
    expect(worker?.listenerCount('message')).toBe(0)
    expect(worker?.listenerCount('online')).toBe(0)
    expect(worker?.listenerCount('error')).toBe(1)
    expect(worker?.listenerCount('exit')).toBe(1)
  })

  it('a warm-up makes the next job’s workers; warming again adds none', async () => {
    warmLanes({ threads: 3 })
    expect(seen().made).toHaveLength(2)
    warmLanes({ threads: 3 })
    expect(lanePool.size).toBe(2)
    expect(await commit(3)).toEqual(reference)
    expect(seen().made).toHaveLength(2)
    // the default is one lane per core for a large payload, none for a small one
    warmLanes({ size: 1024 })
    expect(seen().made).toHaveLength(2)
  })

  it('warmFileLanes (both entries, the same function) starts them in the background', async () => {
    expect(light.warmFileLanes).toBe(warmFileLanes)
    warmFileLanes({ threads: 2 })
    expect(seen().made).toHaveLength(0) // the lanes' module is loaded first, then they start
    for (let i = 0; i < 100 && seen().made.length === 0; i++) await sleep(5)
    expect(seen().made).toHaveLength(1)
    expect(await commit(2)).toEqual(reference)
    expect(seen().made).toHaveLength(1)
  })

  it('a warm-up by file takes the file’s size; a file it cannot read warms nothing', async () => {
    warmLanes({ file: join(tmp, 'missing.bin') })
    warmLanes({ file: plainPath }) // 15 KiB: one thread does it
    expect(seen().made).toHaveLength(0)
    const large = join(tmp, 'large.bin')
    writeFileSync(large, '')
    truncateSync(large, PARALLEL_FILE_MIN_BYTES)
    warmLanes({ file: large })
    const lanes = Math.min(MAX_FILE_THREADS, availableParallelism())
    expect(seen().made).toHaveLength(lanes >= 2 ? Math.min(lanes - 1, lanePoolLimits.maxParked) : 0)
    rmSync(large)
  })

  it('keeps at most maxParked workers; a warm-up asks no more', async () => {
    lanePoolLimits.maxParked = 1
    const results = await Promise.all([commit(2), commit(2), commit(3)])
    for (const r of results) expect(r).toEqual(reference)
    expect(lanePool.size).toBe(1)
    expect(seen().made).toHaveLength(4)
    warmLanes({ threads: 4 })
    expect(lanePool.size).toBe(1)
  })

  it('a parked worker ends after idleMs without a job', async () => {
    lanePoolLimits.idleMs = 100
    expect(await commit(2)).toEqual(reference)
    expect(lanePool.size).toBe(1)
    const [parked] = seen().made
    const exited = new Promise((resolve) => parked?.once('exit', resolve))
    await sleep(400)
    expect(lanePool.size).toBe(0)
    await exited
    // the next job makes a new one
    expect(await commit(2)).toEqual(reference)
    expect(seen().made).toHaveLength(2)
  })

  it('a warmed worker that never comes up is ended after idleMs, and frees its place', async () => {
    // Fault injection: a thread that never boots (a real one always does, or fails).
    const stuck = bootingWorker()
    lanePoolLimits.idleMs = 100
    lanePoolLimits.maxParked = 1
    const pool = new LaneWorkerPool(() => stuck as unknown as RealWorker)
    pool.warm(1)
    expect(pool.size).toBe(1)
    await sleep(300)
    expect(stuck.terminated).toBe(1)
    expect(pool.size).toBe(0)
    // its place is free: a warm-up makes another
    pool.warm(1)
    expect(pool.size).toBe(1)
    pool.take(1)
  })

  it('a booting worker that comes up late gets a whole idle period from then', async () => {
    const late = bootingWorker()
    lanePoolLimits.idleMs = 200
    const pool = new LaneWorkerPool(() => late as unknown as RealWorker)
    pool.warm(1)
    await sleep(150)
    late.emit('online')
    await sleep(150)
    // 300 ms after it was parked, 150 ms after it came up: still parked, up
    expect(late.terminated).toBe(0)
    expect(pool.take(1)).toEqual([{ worker: late, online: true }])
  })

  it('a parked worker that dies is forgotten; the next job makes another and is right', async () => {
    expect(await commit(2)).toEqual(reference)
    const [first] = seen().made
    await first?.terminate()
    expect(lanePool.size).toBe(0)
    expect(await commit(2)).toEqual(reference)
    expect(seen().made).toHaveLength(2)
  })

  it('a job that keeps no workers ends them, zeroed, and parks none (a warmed one is used first)', async () => {
    warmLanes({ threads: 2 })
    const c = await commitPlaintextFile(plainPath, DATA_KEY, CAPSULE_ID, {
      chunkSize: CHUNK,
      threads: 2,
      keepWorkers: false,
    })
    expect(c.plaintextCommitment).toEqual(reference)
    expect(seen().made).toHaveLength(1)
    expect(seen().probes).toHaveLength(1)
    expect(lanePool.size).toBe(0)
    // the job returned once its worker's thread had ended
    expect(seen().exited.has(seen().made[0] as RealWorker)).toBe(true)
  })

  it('a warmed worker still booting is taken as it is and given the job once up', async () => {
    warmLanes({ threads: 2 })
    // taken at once, before it is up
    expect(await commit(2)).toEqual(reference)
    expect(seen().made).toHaveLength(1)
    expect(seen().probes).toHaveLength(1)
  })

  it('parked workers do not keep the process alive', () => {
    const src = join(import.meta.dirname, '../src/index.ts')
    const t0 = performance.now()
    const child = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(src)}); m.warmFileLanes({ threads: 3 }); await new Promise((r) => setTimeout(r, 300)); console.log('parked')`,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    )
    const ms = performance.now() - t0
    expect(child.stderr).toBe('')
    expect(child.stdout.trim()).toBe('parked')
    expect(child.status).toBe(0)
    // the idle end is 5 s away: the process left long before
    expect(ms).toBeLessThan(lanePoolLimits.idleMs)
  })
})
