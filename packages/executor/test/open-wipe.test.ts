/**
 * The open's payload digest (ADR 0059) and the plaintext file's wipe (ADR 0035): the open to a
 * file (on capsule-core's lanes or one thread) and the open to memory give the digest of the
 * whole plaintext (plain data, a bundle) that capsule-core's `payloadDigest` gives; a chunk
 * that fails mid-way is refused typed, naming the chunk, and the partial plaintext wiped; and the wipe overwrites the file in place — a
 * descriptor opened during the run reads zeros afterwards, for a small file (synchronous path)
 * and a large one (16 MiB runs).
 */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { open, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeBundle, payloadDigest } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import { memoryFsRoot, openPayloadToFile, openPayloadToMemory } from '../src/run/open-payload.ts'
import { createRunWorkspace } from '../src/run/workspace.ts'
import { capsuleFile } from './helpers/capsule-file.ts'
import { tempWorkspaces } from './helpers/temp-workspace.ts'
import { enc } from './helpers.ts'

/** Capsules in small chunks: many leaves per open. */
const SMALL_CHUNKS = { chunkSize: 64 * 1024 }

const shm = await memoryFsRoot(['/dev/shm'])
const workspace = tempWorkspaces('open-wipe-test-')

describe.runIf(shm)('the open measures the payload from the commitment’s leaves (ADR 0059)', () => {
  it('file (on lanes and on one thread) and memory: the payload digest of the whole plaintext (data, a bundle)', async () => {
    const { ws, dir: capsules } = await workspace()
    const data = randomBytes(40 * 1024 * 1024 + 123)
    const bundle = encodeBundle({ entry: 'main.js', files: { 'main.js': enc('1') }, data })
    for (const plaintext of [data, bundle]) {
      const { src, dataKey } = await capsuleFile(capsules, plaintext, SMALL_CHUNKS)
      const expected = payloadDigest(plaintext, SMALL_CHUNKS.chunkSize)
      for (const threads of [undefined, 1]) {
        const opened = await openPayloadToFile(src, dataKey, {
          dir: ws.tempDir('plaintext-', shm),
          workspace: ws,
          threads,
        })
        expect(opened.payloadDigest).toEqual(expected)
        expect(opened.size).toBe(plaintext.byteLength)
        expect((await readFile(opened.path)).equals(plaintext)).toBe(true)
      }
      const out = new Uint8Array(plaintext.byteLength)
      expect(await openPayloadToMemory(src, out, dataKey)).toEqual(expected)
      expect(Buffer.from(out).equals(plaintext)).toBe(true)
    }
  })

  it.each([
    ['one thread', 1],
    ['lanes', 2],
  ])('a chunk that fails mid-way (%s): PAYLOAD_INTEGRITY, the partial plaintext wiped', async (_l, threads) => {
    const { dir: capsules } = await workspace()
    const data = randomBytes(2 * 1024 * 1024)
    const { src, dataKey, bytes } = await capsuleFile(capsules, data, SMALL_CHUNKS)
    // Chunk 20 of 32 altered: at least 20 chunks of plaintext are written before the open
    // fails (lanes may have written later ones too).
    const at = src.parsed.payloadOffset + 20 * (64 * 1024 + 16) + 5
    bytes[at] = (bytes[at] as number) ^ 1
    await writeFile(src.path, bytes)
    const ws = createRunWorkspace({ tmpRoot: tmpdir() })
    const dir = await ws.tempDir('plaintext-', shm)
    const err = await openPayloadToFile(src, dataKey, { dir, workspace: ws, threads }).catch(
      (e: unknown) => e,
    )
    expect(err).toMatchObject({
      code: 'PAYLOAD_INTEGRITY',
      cause: { details: { chunk: 20, reason: 'chunk-authentication' } },
    })
    const path = join(dir, 'plaintext')
    // The partial file is there until the clean-up wipes it.
    const held = await open(path, 'r')
    try {
      const size = (await held.stat()).size
      expect(size).toBeGreaterThanOrEqual(20 * 64 * 1024)
      const head = Buffer.alloc(20 * 64 * 1024)
      await held.read(head, 0, head.byteLength, 0)
      expect(head.equals(data.subarray(0, head.byteLength))).toBe(true)
      const report = await ws.dispose()
      expect(report.failures).toEqual([])
      expect(report.fileBytesOverwritten).toBe(size)
      expect(existsSync(path)).toBe(false)
      expect(existsSync(dir)).toBe(false)
      // A descriptor held through the wipe reads zeros over the whole size.
      const after = Buffer.alloc(size, 1)
      const { bytesRead } = await held.read(after, 0, size, 0)
      expect(bytesRead).toBe(size)
      expect(after.every((b) => b === 0)).toBe(true)
    } finally {
      await held.close()
    }
    // The same capsule into memory: the same typed refusal.
    const out = new Uint8Array(data.byteLength)
    await expect(openPayloadToMemory(src, out, dataKey)).rejects.toMatchObject({
      code: 'PAYLOAD_INTEGRITY',
    })
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
