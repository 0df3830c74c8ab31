/**
 * The open's hashing on a worker (ADR 0049) and the plaintext file's wipe (ADR 0035): the
 * worker hashes exactly what the open's thread would (plain data, a bundle's data range), a
 * chunk that fails mid-way is refused typed with the worker stopped and the partial plaintext
 * wiped, and the wipe overwrites the file in place — a descriptor opened during the run reads
 * zeros afterwards, for a small file (synchronous path) and a large one (16 MiB runs).
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readdirSync } from 'node:fs'
import { open, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeBundle } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import { memoryFsRoot, openPayloadToFile } from '../src/run/open-payload.ts'
import { createRunWorkspace } from '../src/run/workspace.ts'
import { capsuleFile } from './helpers/capsule-file.ts'
import { tempWorkspaces } from './helpers/temp-workspace.ts'
import { enc } from './helpers.ts'

/** This process's OS threads (a worker is one). */
const threads = () => readdirSync('/proc/self/task').length
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** Capsules in small chunks: many worker messages per open. */
const SMALL_CHUNKS = { chunkSize: 64 * 1024 }
const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest())

const shm = await memoryFsRoot(['/dev/shm'])
const workspace = tempWorkspaces('open-wipe-test-')

describe.runIf(shm)('the open hashes on a worker (ADR 0049)', () => {
  it('the same digest and range as on the thread: plain data, and a bundle’s data range', async () => {
    const { ws, dir: capsules } = await workspace()
    const data = randomBytes(1024 * 1024 + 123)
    const bundle = encodeBundle({ entry: 'main.js', files: { 'main.js': enc('1') }, data })
    for (const [plaintext, isBundle] of [
      [data, false],
      [bundle, true],
    ] as const) {
      const { src, dataKey } = await capsuleFile(capsules, plaintext, SMALL_CHUNKS)
      const got = []
      for (const hashIn of ['thread', 'worker'] as const) {
        const dir = ws.tempDir('plaintext-', shm)
        got.push(
          await openPayloadToFile(src, dataKey, { dir, bundle: isBundle, workspace: ws, hashIn }),
        )
      }
      const [thread, worker] = got as [(typeof got)[0], (typeof got)[0]]
      expect(thread.hashedIn).toBe('thread')
      expect(worker.hashedIn).toBe('worker')
      expect(worker.sha256).toEqual(sha256(data))
      expect(worker.sha256).toEqual(thread.sha256)
      expect(worker.range).toEqual(thread.range)
      expect(worker.range?.size).toBe(data.byteLength)
      expect(await readFile(worker.path)).toEqual(Buffer.from(plaintext))
    }
  })

  it('a chunk that fails mid-way: PAYLOAD_INTEGRITY, the worker stopped, the partial plaintext wiped', async () => {
    const { dir: capsules } = await workspace()
    const data = randomBytes(2 * 1024 * 1024)
    const { src, dataKey, bytes } = await capsuleFile(capsules, data, SMALL_CHUNKS)
    // Chunk 20 of 32 altered: 20 chunks of plaintext are written before the open fails.
    const at = src.parsed.payloadOffset + 20 * (64 * 1024 + 16) + 5
    bytes[at] = (bytes[at] as number) ^ 1
    await writeFile(src.path, bytes)
    const ws = createRunWorkspace({ tmpRoot: tmpdir() })
    const dir = await ws.tempDir('plaintext-', shm)
    const threadsBefore = threads()
    const err = await openPayloadToFile(src, dataKey, {
      dir,
      bundle: false,
      workspace: ws,
      hashIn: 'worker',
    }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'PAYLOAD_INTEGRITY' })
    const path = join(dir, 'plaintext')
    // The partial file is there (20 chunks of plaintext) until the clean-up wipes it.
    const held = await open(path, 'r')
    try {
      expect((await held.stat()).size).toBe(20 * 64 * 1024)
      const report = await ws.dispose()
      expect(report.failures).toEqual([])
      expect(report.fileBytesOverwritten).toBeGreaterThanOrEqual(20 * 64 * 1024)
      expect(existsSync(path)).toBe(false)
      expect(existsSync(dir)).toBe(false)
      const after = await held.readFile()
      expect(after.byteLength).toBe(20 * 64 * 1024)
      expect(after.every((b) => b === 0)).toBe(true)
    } finally {
      await held.close()
    }
    // The worker's thread is gone (the OS joins it shortly after `terminate`).
    for (let i = 0; i < 40 && threads() > threadsBefore; i++) await sleep(50)
    expect(threads()).toBeLessThanOrEqual(threadsBefore)
  })
})

describe.runIf(shm)('the wipe overwrites the plaintext file in place', () => {
  it.each([
    ['1 MiB (synchronous calls)', 1024 * 1024],
    ['20 MiB (16 MiB runs on two lanes)', 20 * 1024 * 1024 + 7],
  ])('%s: a descriptor held through the run reads only zeros after clean-up', async (_l, size) => {
    const { dir: capsules } = await workspace()
    const data = randomBytes(size)
    const { src, dataKey } = await capsuleFile(capsules, data, { chunkSize: 1024 * 1024 })
    const ws = createRunWorkspace({ tmpRoot: tmpdir() })
    const opened = await openPayloadToFile(src, dataKey, {
      dir: ws.tempDir('plaintext-', shm),
      bundle: false,
      workspace: ws,
    })
    const held = await open(opened.path, 'r')
    try {
      expect((await held.readFile()).equals(data)).toBe(true)
      const report = await ws.dispose()
      expect(report.failures).toEqual([])
      expect(report.fileBytesOverwritten).toBe(size)
      expect(existsSync(opened.path)).toBe(false)
      const after = Buffer.alloc(size, 1)
      const { bytesRead } = await held.read(after, 0, size, 0)
      expect(bytesRead).toBe(size)
      expect(after.every((b) => b === 0)).toBe(true)
    } finally {
      await held.close()
    }
  })
})
