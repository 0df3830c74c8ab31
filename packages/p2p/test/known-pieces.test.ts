/**
 * A referenced file added with the digests of its last 1 MiB pieces (`pieces`: a version 2
 * capsule's bodies, which its seal hashed for the commitment): the add takes them as those
 * leaves' digests and reads only the pieces before them; the CID is the one of the same bytes
 * added with nothing given. Malformed pieces are refused, never trusted in part.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { commitAndSealFile, DigicapError, openFile, signCapsuleHeader } from '@digicap/capsule-core'
import { MemoryBlockstore } from 'blockstore-core'
import { afterAll, describe, expect, it } from 'vitest'
import { importCapsule, openDataDirBlockstore, openFsCapsuleImporter } from '../src/import.ts'
import { collect, leafCids } from './bytes.ts'

const MiB = 1_048_576
const dir = mkdtempSync(join(tmpdir(), 'digicap-known-pieces-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest())

type Piece = { offset: number; length: number; digest: Uint8Array }

function piecesFrom(bytes: Uint8Array, from: number): [Piece, Piece, ...Piece[]] {
  const out: Piece[] = []
  for (let o = from; o < bytes.length; o += MiB) {
    const piece = bytes.subarray(o, Math.min(bytes.length, o + MiB))
    out.push({ offset: o, length: piece.length, digest: sha256(piece) })
  }
  if (out.length < 2) throw new Error('the tests give at least two pieces')
  return out as [Piece, Piece, ...Piece[]]
}

describe('an add given the digests of its last pieces', () => {
  it('gives the CID of the same bytes added with nothing given, and references every leaf', async () => {
    const bytes = randomBytes(5 * MiB + 3)
    const file = join(dir, 'five.bin')
    await writeFile(file, bytes)
    const dataDir = join(dir, 'dd-five')
    const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    const cid = await importer.put({ path: file, pieces: piecesFrom(bytes, 2 * MiB) })
    await importer.close()
    expect(cid).toBe(String(await importCapsule(bytes, new MemoryBlockstore())))
    const store = await openDataDirBlockstore(dataDir)
    try {
      const got: Uint8Array[] = []
      for (const leaf of await leafCids(bytes)) got.push(await collect(store.get(leaf)))
      expect(Buffer.concat(got).equals(bytes)).toBe(true)
    } finally {
      await store.close()
    }
  })

  it('does not read the given pieces but the last: bytes changed before it, behind the same size and mtime, do not change the CID', async () => {
    // The contract: the writer's digests are the leaves' (it just wrote and hashed them).
    // Shown by changing those bytes under the file's stamp: the add still gives the CID of
    // the bytes the digests describe, which only a reader of the digests, not the file, can.
    // The last piece is read and checked (the next test).
    const bytes = randomBytes(4 * MiB)
    const file = join(dir, 'stamped.bin')
    await writeFile(file, bytes)
    const { atime, mtime } = await stat(file)
    const pieces = piecesFrom(bytes, MiB)
    const other = Buffer.from(bytes)
    other.fill(7, MiB, 3 * MiB)
    await writeFile(file, other)
    await utimes(file, atime, mtime)
    const importer = await openFsCapsuleImporter(join(dir, 'dd-stamped'), { referenceFiles: true })
    try {
      expect(await importer.put({ path: file, pieces })).toBe(
        String(await importCapsule(bytes, new MemoryBlockstore())),
      )
      // and with nothing given it reads the file as it is
      expect(await importer.put({ path: file })).toBe(
        String(await importCapsule(other, new MemoryBlockstore())),
      )
    } finally {
      await importer.close()
    }
  })

  it('refuses pieces whose last digest is not the file’s bytes (typed): a writer with wrong offsets or digests', async () => {
    const bytes = randomBytes(3 * MiB + 9)
    const file = join(dir, 'last-wrong.bin')
    await writeFile(file, bytes)
    const pieces = piecesFrom(bytes, MiB)
    const last = pieces[pieces.length - 1] as Piece
    pieces[pieces.length - 1] = { ...last, digest: sha256(randomBytes(9)) }
    const importer = await openFsCapsuleImporter(join(dir, 'dd-last-wrong'), {
      referenceFiles: true,
    })
    try {
      await expect(importer.put({ path: file, pieces })).rejects.toMatchObject({
        code: 'CAPSULE_STORE',
        message: expect.stringMatching(/not the file/),
      })
    } finally {
      await importer.close()
    }
  })

  it.each([
    [
      'not on a 1 MiB offset',
      (p: [Piece, Piece, ...Piece[]]) => [{ ...p[0], offset: p[0].offset + 1 }, ...p.slice(1)],
    ],
    ['with a gap', (p: [Piece, Piece, ...Piece[]]) => [p[0], ...p.slice(2)]],
    ['not reaching the end', (p: [Piece, Piece, ...Piece[]]) => p.slice(0, -1)],
    [
      'a short piece in the middle',
      (p: [Piece, Piece, ...Piece[]]) => [{ ...p[0], length: 10 }, ...p.slice(1)],
    ],
    [
      'a digest of 31 bytes',
      (p: [Piece, Piece, ...Piece[]]) => [
        { ...p[0], digest: p[0].digest.subarray(1) },
        ...p.slice(1),
      ],
    ],
    ['reordered', (p: [Piece, Piece, ...Piece[]]) => [p[1], p[0], ...p.slice(2)]],
  ])('refuses pieces %s (typed)', async (_what, spoil) => {
    const bytes = randomBytes(3 * MiB + 5)
    const file = join(dir, `bad-${_what.replace(/\W+/g, '-')}.bin`)
    await writeFile(file, bytes)
    const importer = await openFsCapsuleImporter(
      join(dir, `dd-bad-${_what.replace(/\W+/g, '-')}`),
      {
        referenceFiles: true,
      },
    )
    try {
      const pieces = spoil(piecesFrom(bytes, MiB))
      const err = await importer.put({ path: file, pieces }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(DigicapError)
      expect(err).toMatchObject({ code: 'CAPSULE_STORE' })
    } finally {
      await importer.close()
    }
  })

  it('a version 2 capsule sealed by commitAndSealFile adds from its seal’s digests to the CID of its bytes, and opens', async () => {
    const plain = join(dir, 'plain-65.bin')
    await writeFile(plain, randomBytes(64 * MiB + 11))
    const output = join(dir, 'v2.capsule')
    const ownerKey = randomBytes(32)
    const { addressFromPrivateKey } = await import('@digicap/capsule-core')
    const dataKey = randomBytes(32)
    const dataDir = join(dir, 'dd-v2')
    const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    let cid: string | undefined
    let handed = 0
    try {
      await commitAndSealFile({
        owner: addressFromPrivateKey(ownerKey),
        policy: {
          chainId: 31337,
          registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
          policy: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
        },
        keyguard: {
          peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
          keyId: 'k',
          wrapScheme: 'tpm2-rsa-oaep-sha256',
        },
        runtime: { kind: 'data' },
        formatVersion: 2,
        dataKey,
        input: plain,
        output,
        sign: (header) => signCapsuleHeader(header, ownerKey),
        onWritten: async (path, pieces) => {
          handed = pieces?.length ?? 0
          cid = await importer.put({ path, referencePath: output, ...(pieces ? { pieces } : {}) })
        },
      })
    } finally {
      await importer.close()
    }
    expect(handed).toBe(65)
    const capsule = readFileSync(output)
    expect(cid).toBe(String(await importCapsule(capsule, new MemoryBlockstore())))
    await openFile({ input: output, output: join(dir, 'v2.out'), dataKey })
    expect(readFileSync(join(dir, 'v2.out')).equals(readFileSync(plain))).toBe(true)
  }, 60_000)
})
