/**
 * A file's ReadStream is a stream source, not a `{ path }`: it has a `path` property too, which
 * made the import read the whole file (not the stream's range) and, with `referenceFiles`,
 * keep references to a file its caller removes next (`pi-node seal-image` puts the sealed
 * image's blobs as streams of a temporary layout): every image blob became unfetchable.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryBlockstore } from 'blockstore-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { importCapsule, openDataDirBlockstore, openFsCapsuleImporter } from '../src/import.ts'

const MiB = 1_048_576

describe('a ReadStream is a stream source', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'digicap-stream-source-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('with referenceFiles its blocks are copies: readable after the file is removed', async () => {
    const dataDir = join(dir, 'node')
    const file = join(dir, 'blob.bin')
    const bytes = randomBytes(3 * MiB + 5)
    await writeFile(file, bytes)
    const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    const cid = await importer.put(createReadStream(file))
    await importer.close()
    await rm(file)
    const store = await openDataDirBlockstore(dataDir)
    try {
      // a helia-free read of the DAG: each leaf through the blockstore, in order
      const { unixfs } = await import('@helia/unixfs')
      const fs = unixfs({ blockstore: store } as never)
      const parts: Uint8Array[] = []
      for await (const c of fs.cat((await import('multiformats/cid')).CID.parse(cid))) parts.push(c)
      expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    } finally {
      await store.close()
    }
  })

  it("stores the stream's range, not the whole file", async () => {
    const file = join(dir, 'ranged.bin')
    const bytes = randomBytes(2 * MiB)
    await writeFile(file, bytes)
    const range = bytes.subarray(1000, MiB + 999)
    const fromStream = await importCapsule(
      createReadStream(file, { start: 1000, end: MiB + 998 }),
      new MemoryBlockstore(),
    )
    expect(String(fromStream)).toBe(String(await importCapsule(range, new MemoryBlockstore())))
  })
})
