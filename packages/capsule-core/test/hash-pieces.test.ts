/**
 * `sha256FilePieces`: each fixed-size piece's SHA-256, hashed on worker lanes that read the file
 * themselves, in file order across the 1 024-piece segments (what the IPFS add of a sealed
 * capsule uses for its leaves).
 */
import { createHash } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fileLimits } from '../src/file/index.ts'
import { type FilePieceDigest, InvalidArgumentError, sha256FilePieces } from '../src/index.ts'
import { detBytes } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-pieces-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

async function all(path: string, pieceSize: number, threads?: number) {
  const out: FilePieceDigest[] = []
  for await (const p of sha256FilePieces(path, { pieceSize, ...(threads ? { threads } : {}) }))
    out.push(p)
  return out
}

describe('sha256FilePieces', () => {
  // segments of 1 024 pieces instead of 4 096: several segments from a 3 MiB file
  const segment = fileLimits.hashSegmentPieces
  beforeAll(() => {
    fileLimits.hashSegmentPieces = 1024
  })
  afterAll(() => {
    fileLimits.hashSegmentPieces = segment
  })
  const bytes = detBytes('pieces', 3 * 1024 * 1024 + 17)
  const path = join(tmp, 'file.bin')
  writeFileSync(path, bytes)

  it('gives every piece its SHA-256 in file order, across segments, on one lane or several', async () => {
    const pieceSize = 1000 // 3 147 pieces: four segments, the last piece short
    const expected = []
    for (let at = 0; at < bytes.length; at += pieceSize) {
      const piece = bytes.subarray(at, at + pieceSize)
      expected.push({
        offset: at,
        length: piece.length,
        digest: createHash('sha256').update(piece).digest('hex'),
      })
    }
    for (const threads of [1, 2, 3]) {
      const got = await all(path, pieceSize, threads)
      expect(got.map((p) => ({ ...p, digest: hex(p.digest) }))).toEqual(expected)
    }
  })

  it('an empty file has no piece; a consumer that stops early ends the lanes', async () => {
    const empty = join(tmp, 'empty.bin')
    writeFileSync(empty, new Uint8Array(0))
    expect(await all(empty, 1024)).toEqual([])
    let n = 0
    for await (const _ of sha256FilePieces(path, { pieceSize: 100, threads: 2 })) {
      if (++n === 1500) break
    }
    expect(n).toBe(1500)
  })

  it('refuses a bad piece size and a path that is not a regular file, typed', async () => {
    await expect(all(path, 0)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(all(path, 1.5)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(all(tmp, 1024)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(all(join(tmp, 'missing.bin'), 1024)).rejects.toMatchObject({ code: 'ENOENT' })
  })
  it('hands on each digest as the lanes give it, not once the whole segment is hashed', async () => {
    // 64 pieces, one lane: when the first digest arrives the last piece is not hashed yet (the
    // lanes run at most a small window ahead), so bytes changed then show in its digest. The
    // old whole-segment hashing gave the digest of the bytes before the change.
    const pieceSize = 64 * 1024
    const file = join(tmp, 'streamed.bin')
    writeFileSync(file, detBytes('streamed', 64 * pieceSize))
    const changed = new Uint8Array(pieceSize).fill(0xaa)
    const out: FilePieceDigest[] = []
    for await (const p of sha256FilePieces(file, { pieceSize, threads: 1 })) {
      if (out.length === 0) {
        const fd = openSync(file, 'r+')
        writeSync(fd, changed, 0, pieceSize, 63 * pieceSize)
        closeSync(fd)
      }
      out.push(p)
    }
    expect(out).toHaveLength(64)
    expect(hex(out[63]?.digest as Uint8Array)).toBe(
      createHash('sha256').update(changed).digest('hex'),
    )
  })
})
