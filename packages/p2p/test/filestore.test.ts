/**
 * The filestore layout `pi-node seal` adds with: the capsule's leaves are references to the
 * capsule file (one write of the capsule instead of two), served by a real node over bitswap,
 * and a referenced block whose file changed, shrank or went away is never served as other bytes.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  mkdir,
  mkdtemp,
  open,
  readdir,
  readlink,
  rename,
  rm,
  stat,
  truncate,
  utimes,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ABSENT_RECHECK_MS } from '../src/filestore/filestore-blockstore.ts'
import { OPEN_FILE_IDLE_MS } from '../src/filestore/open-files.ts'
import { shardFolderFaults } from '../src/filestore/shard-folder.ts'
import {
  blocksFolder,
  FilestoreBlockstore,
  filestoreFolder,
  importCapsule,
  openDataDirBlockstore,
  openFsCapsuleImporter,
} from '../src/import.ts'
import { createDigicapNode, heliaCapsuleStore } from '../src/index.ts'
import { collect, leafCids } from './bytes.ts'
import { runKilledChild } from './killed-child.ts'

const MiB = 1_048_576

/** Bytes of every file under `dir`, recursively. */
async function bytesUnder(dir: string): Promise<number> {
  let n = 0
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (e.isFile()) n += (await stat(join(e.parentPath, e.name))).size
  }
  return n
}

/** This process's open file descriptors on `file` (Linux: `/proc/self/fd`). */
async function openCount(file: string): Promise<number> {
  let n = 0
  for (const fd of await readdir('/proc/self/fd')) {
    if ((await readlink(join('/proc/self/fd', fd)).catch(() => '')) === file) n++
  }
  return n
}

describe('filestore: blocks kept as references to the capsule file', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'digicap-filestore-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('adds a 5 MiB file without copying its bytes; a node serves them to a peer over bitswap', async () => {
    const dataDir = join(dir, 'serve')
    const file = join(dir, 'capsule.bin')
    const bytes = randomBytes(5 * MiB + 7)
    await writeFile(file, bytes)
    const blocks = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    const cid = await blocks.put({ path: file })
    await blocks.close()
    // the CID is the copy's, and only the root node (a few hundred bytes) was written as a copy
    expect(cid).toBe(String(await importCapsule(bytes, new MemoryBlockstore())))
    expect(await bytesUnder(blocksFolder(dataDir))).toBeLessThan(4096)
    expect(await bytesUnder(filestoreFolder(dataDir))).toBeLessThan(6 * 4096)

    const a = await createDigicapNode({ dataDir, datastore: 'memory' })
    const b = await createDigicapNode()
    try {
      await b.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
      const got = await collect(
        heliaCapsuleStore(b.helia).get(cid, { signal: AbortSignal.timeout(60_000) }),
      )
      expect(got.equals(bytes)).toBe(true)
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  }, 90_000)

  it('a block held as a reference and as a copy: the copy is read once the file changed', async () => {
    const store = new FilestoreBlockstore(join(dir, 'both-blocks'), join(dir, 'both-refs'))
    await store.open()
    try {
      const file = join(dir, 'both.bin')
      const bytes = new Uint8Array(randomBytes(4096))
      await writeFile(file, bytes)
      const cid = CID.createV1(raw.code, await sha256.digest(bytes))
      await store.putReference(cid, { path: file, offset: 0, length: bytes.byteLength })
      expect((await collect(store.get(cid))).equals(bytes)).toBe(true)
      await store.put(cid, bytes)
      // the referenced file changes in place: the reference is refused, the copy still holds
      const fh = await open(file, 'r+')
      await fh.write(Uint8Array.of((bytes[7] as number) ^ 1), 0, 1, 7)
      await fh.close()
      await utimes(file, new Date(), new Date(Date.now() + 5_000))
      expect((await collect(store.get(cid))).equals(bytes)).toBe(true)
    } finally {
      await store.close()
    }
  })

  it('refuses a referenced block whose file changed, and drops one whose file shrank or went away', async () => {
    const dataDir = join(dir, 'tamper')
    const file = join(dir, 'tamper.bin')
    const bytes = randomBytes(3 * MiB)
    await writeFile(file, bytes)
    const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    await importer.put({ path: file })
    await importer.close()
    const [first, second, third] = await leafCids(bytes)
    const store = await openDataDirBlockstore(dataDir)
    try {
      expect(await collect(store.get(first as CID))).toEqual(bytes.subarray(0, MiB))
      // one byte of the second leaf flipped in place: that block is refused, typed
      const fh = await open(file, 'r+')
      await fh.write(Uint8Array.of(bytes[MiB + 10]! ^ 1), 0, 1, MiB + 10)
      await fh.close()
      await expect(collect(store.get(second as CID))).rejects.toMatchObject({
        code: 'CAPSULE_STORE',
      })
      // shrunk below the third leaf: absent (the node fetches or reports it missing)
      await truncate(file, 2 * MiB + 5)
      expect(await store.has(third as CID)).toBe(false)
      await expect(collect(store.get(third as CID))).rejects.toMatchObject({
        code: 'CAPSULE_STORE',
      })
      await rm(file)
      expect(await store.has(first as CID)).toBe(false)
      await expect(collect(store.get(first as CID))).rejects.toMatchObject({
        name: 'NotFoundError',
      })
    } finally {
      await store.close()
    }
  })

  it('keeps a referenced file open between block reads, closes it once idle and when the store closes', async () => {
    const dataDir = join(dir, 'open')
    const file = join(dir, 'open.bin')
    const bytes = randomBytes(4 * MiB)
    await writeFile(file, bytes)
    const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    await importer.put({ path: file })
    await importer.close()
    const leaves = await leafCids(bytes)
    const store = await openDataDirBlockstore(dataDir)
    try {
      const got = await Promise.all(leaves.map(async (leaf) => collect(store.get(leaf))))
      expect(Buffer.concat(got).equals(bytes)).toBe(true)
      // one file opened for the four reads and kept (before: opened and closed by each read)
      expect(await openCount(file)).toBe(1)
      await new Promise((r) => setTimeout(r, OPEN_FILE_IDLE_MS + 300))
      expect(await openCount(file)).toBe(0)
      // read again: opened again, and closed with the store
      expect(
        (await collect(store.get(leaves[1] as CID))).equals(bytes.subarray(MiB, 2 * MiB)),
      ).toBe(true)
      expect(await openCount(file)).toBe(1)
    } finally {
      await store.close()
    }
    expect(await openCount(file)).toBe(0)
  }, 30_000)

  it('a referenced file replaced after a read is read anew: a changed leaf is refused, the others served', async () => {
    const dataDir = join(dir, 'replaced')
    const file = join(dir, 'replaced.bin')
    const bytes = randomBytes(3 * MiB)
    await writeFile(file, bytes)
    const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    await importer.put({ path: file })
    await importer.close()
    const [first, second] = await leafCids(bytes)
    const store = await openDataDirBlockstore(dataDir)
    try {
      expect((await collect(store.get(first as CID))).equals(bytes.subarray(0, MiB))).toBe(true)
      // another file renamed over it (a new inode at the path), its second leaf changed: the
      // file kept open since the first read still holds the old bytes, and must not be read
      const changed = Buffer.from(bytes)
      changed[MiB + 10] = (changed[MiB + 10] as number) ^ 1
      await writeFile(`${file}.new`, changed)
      await rename(`${file}.new`, file)
      await expect(collect(store.get(second as CID))).rejects.toMatchObject({
        code: 'CAPSULE_STORE',
      })
      expect((await collect(store.get(first as CID))).equals(bytes.subarray(0, MiB))).toBe(true)
      expect(await openCount(file)).toBe(1)
    } finally {
      await store.close()
    }
  })

  it('a peer serving a wrong block (a file changed behind its stamp) is refused: the fetch fails, no wrong byte', async () => {
    const dataDir = join(dir, 'liar')
    const file = join(dir, 'liar.bin')
    const bytes = randomBytes(3 * MiB)
    await writeFile(file, bytes)
    const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    const cid = await importer.put({ path: file })
    await importer.close()
    // rewrite the second leaf and put the size and mtime back: A trusts the stamp and serves it
    const before = await stat(file)
    const fh = await open(file, 'r+')
    await fh.write(randomBytes(MiB), 0, MiB, MiB)
    await fh.close()
    await utimes(file, before.atime, before.mtime)
    const a = await createDigicapNode({ dataDir, datastore: 'memory' })
    const b = await createDigicapNode()
    try {
      await b.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
      const parts: Uint8Array[] = []
      const err = await (async () => {
        for await (const c of heliaCapsuleStore(b.helia).get(cid, {
          signal: AbortSignal.timeout(4000),
        }))
          parts.push(c)
      })().catch((e) => e)
      expect(err).toMatchObject({ code: 'CAPSULE_STORE' })
      // whatever arrived is the capsule's own bytes, in order: the first leaf at most
      const got = Buffer.concat(parts)
      expect(got.byteLength).toBeLessThanOrEqual(MiB)
      expect(got.equals(bytes.subarray(0, got.byteLength))).toBe(true)
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  }, 60_000)

  it('a file written while it is added is refused (typed)', async () => {
    const file = join(dir, 'moving.bin')
    await writeFile(file, randomBytes(2 * MiB))
    const store = new FilestoreBlockstore(join(dir, 'm-blocks'), join(dir, 'm-refs'))
    await store.open()
    let touched = false
    const sink = {
      put: store.put.bind(store),
      async putReference(...args: Parameters<FilestoreBlockstore['putReference']>) {
        // fault injection: another writer appends to the file mid-import
        if (!touched) await writeFile(file, Uint8Array.of(1), { flag: 'a' })
        touched = true
        return store.putReference(...args)
      },
    }
    await expect(
      importCapsule({ path: file }, sink, { referenceFile: true }),
    ).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
    await store.close()
  })

  it('puts of one block at once are one write: no stall, the block reads back whole', async () => {
    const store = new FilestoreBlockstore(join(dir, 'p-blocks'), join(dir, 'p-refs'))
    await store.open()
    const bytes = new Uint8Array(randomBytes(1024 * 1024))
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    const started = performance.now()
    // two fetch windows waiting for one leaf each store it; before, the second write's rename
    // of the shared temporary file failed and was retried 10 times, 100 ms apart (≥ 900 ms)
    await Promise.all([0, 1, 2, 3].map(() => store.put(cid, bytes)))
    expect(performance.now() - started).toBeLessThan(800)
    const parts: Uint8Array[] = []
    for await (const part of store.get(cid)) parts.push(part)
    expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    await store.close()
  })

  it('a corrupt reference entry is a miss; only SHA-256 blocks and absolute paths are kept', async () => {
    const store = new FilestoreBlockstore(join(dir, 'c-blocks'), join(dir, 'c-refs'))
    await store.open()
    const bytes = randomBytes(100)
    const [cid] = await leafCids(bytes)
    await store.putReference(cid as CID, { path: join(dir, 'x'), offset: 0, length: 100 })
    // overwrite the entry with garbage, as a crash or a hand edit might leave it
    const refs = await readdir(join(dir, 'c-refs'), { recursive: true, withFileTypes: true })
    const entry = refs.find((e) => e.isFile()) as { parentPath: string; name: string }
    await writeFile(join(entry.parentPath, entry.name), '{"v":1,"path":"relative","offset":0}')
    expect(await store.has(cid as CID)).toBe(false)
    expect(await store.reference(cid as CID)).toBeUndefined()
    const idCid = CID.createV1(raw.code, identity.digest(Uint8Array.of(1)))
    await expect(
      store.putReference(idCid, { path: join(dir, 'x'), offset: 0, length: 1 }),
    ).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
    await expect(
      store.putReference(cid as CID, { path: 'relative/x', offset: 0, length: 1 }),
    ).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
    await expect(
      store.putReference(cid as CID, { path: join(dir, 'x'), offset: -1, length: 1 }),
    ).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
    // a length no block has (read, it would allocate 3 GiB): not a reference of this store
    await expect(
      store.putReference(cid as CID, { path: join(dir, 'x'), offset: 0, length: 3 * 1024 * MiB }),
    ).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
    await writeFile(
      join(entry.parentPath, entry.name),
      JSON.stringify({ v: 1, path: join(dir, 'x'), offset: 0, length: 3 * 1024 * MiB }),
    )
    expect(await store.has(cid as CID)).toBe(false)
    await store.close()
  })

  it('a block found absent is answered absent for ABSENT_RECHECK_MS without looking again; one written here is present at once', async () => {
    const blocks = join(dir, 'a-blocks')
    const refs = join(dir, 'a-refs')
    const store = new FilestoreBlockstore(blocks, refs)
    const other = new FilestoreBlockstore(blocks, refs) // another process on the data folder
    await store.open()
    await other.open()
    const [first, second] = [randomBytes(100), randomBytes(100)]
    const [a] = await leafCids(first)
    const [b] = await leafCids(second)
    expect(await store.has(a as CID)).toBe(false)
    expect(await store.has(b as CID)).toBe(false)
    await other.put(a as CID, first)
    // on disk now, but this store looked a moment ago: still absent, no file-system call
    expect(await store.has(a as CID)).toBe(false)
    // a block this store writes itself is present at once, even one found absent while it was
    // being written (helia asks `has`, then puts)
    const writing = store.put(b as CID, second)
    expect(await store.has(b as CID)).toBe(false)
    await writing
    expect(await store.has(b as CID)).toBe(true)
    // and the other process's block once the wait is over
    await new Promise((r) => setTimeout(r, ABSENT_RECHECK_MS + 50))
    expect(await store.has(a as CID)).toBe(true)
    await store.close()
    await other.close()
  })

  it('a FIFO swapped in for a referenced file is absent: the read returns, and the file read after it is served', async () => {
    const store = new FilestoreBlockstore(join(dir, 'f-blocks'), join(dir, 'f-refs'))
    await store.open()
    const bytes = randomBytes(64 * 1024)
    const file = join(dir, 'fifo-target.bin')
    await writeFile(file, bytes)
    const [cid] = await leafCids(bytes)
    await store.putReference(cid as CID, { path: file, offset: 0, length: bytes.length })
    // the path now names a FIFO nobody writes to: an open without O_NONBLOCK never returns
    await rm(file)
    const made = spawnSync('mkfifo', [file])
    expect(made.status).toBe(0)
    const read = collect(store.get(cid as CID)).then(
      () => 'read',
      (e: Error) => e.name,
    )
    expect(await Promise.race([read, new Promise((r) => setTimeout(() => r('hung'), 3000))])).toBe(
      'NotFoundError',
    )
    // the regular file back at the path: served again
    await rm(file)
    await writeFile(file, bytes)
    expect(Buffer.compare(await collect(store.get(cid as CID)), bytes)).toBe(0)
    await store.close()
  })

  it('adds a file from its temp path under the name it is renamed to: nothing served before the rename, every leaf after', async () => {
    // what pi-node seal does since ADR 0045: the add runs while capsule-core flushes the temp
    // file; a seal killed before the rename leaves references to a file that does not exist
    const dataDir = join(dir, 'renamed')
    const partial = join(dir, '.renamed.bin.partial')
    const final = join(dir, 'renamed.bin')
    // past 32 MiB: the leaves are hashed on capsule-core's worker lanes
    const bytes = randomBytes(33 * MiB + 5)
    await writeFile(partial, bytes)
    const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    const cid = await importer.put({ path: partial, referencePath: final })
    await importer.close()
    expect(cid).toBe(String(await importCapsule(bytes, new MemoryBlockstore())))
    const leaves = await leafCids(bytes)
    const store = await openDataDirBlockstore(dataDir)
    try {
      for (const leaf of leaves) {
        expect((await store.reference(leaf))?.path).toBe(final)
        expect(await store.has(leaf)).toBe(false)
      }
      await rename(partial, final)
      const again = await openDataDirBlockstore(dataDir)
      try {
        const got: Uint8Array[] = []
        for (const leaf of leaves) got.push(await collect(again.get(leaf)))
        expect(Buffer.concat(got).equals(bytes)).toBe(true)
      } finally {
        await again.close()
      }
    } finally {
      await store.close()
    }
  })

  it('referenceFile needs a blockstore that keeps references (typed), and copies streams', async () => {
    const file = join(dir, 'plain.bin')
    await writeFile(file, randomBytes(10))
    await expect(
      importCapsule({ path: file }, new MemoryBlockstore(), { referenceFile: true }),
    ).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
    const dataDir = join(dir, 'streams')
    const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
    const bytes = randomBytes(2 * MiB)
    await importer.put(
      (async function* () {
        yield bytes
      })(),
    )
    await importer.close()
    expect(await bytesUnder(blocksFolder(dataDir))).toBeGreaterThan(2 * MiB)
    expect(await bytesUnder(filestoreFolder(dataDir))).toBe(0)
  })
})

describe('filestore: copies written whole or not at all, read in one piece', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'digicap-copies-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('a process killed while it writes a block leaves no block: absent, not listed, written whole again', async () => {
    const blocks = join(dir, 'crash-blocks')
    const refs = join(dir, 'crash-refs')
    const bytes = new Uint8Array(randomBytes(64 * MiB))
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    const file = join(dir, 'block.bin')
    await writeFile(file, bytes)
    // a real crash mid-write: the writing process kills itself (SIGKILL, nothing runs after it)
    // once the block's file on disk holds some of its bytes and not all
    const store = new URL('../src/filestore/filestore-blockstore.ts', import.meta.url).href
    const writer = `
      import { readFileSync, readdirSync, statSync } from 'node:fs'
      import { join } from 'node:path'
      import { CID } from 'multiformats/cid'
      const { FilestoreBlockstore } = await import(${JSON.stringify(store)})
      const blocks = ${JSON.stringify(blocks)}
      const bytes = readFileSync(${JSON.stringify(file)})
      const s = new FilestoreBlockstore(blocks, ${JSON.stringify(refs)})
      await s.open()
      const watch = () => {
        for (const e of readdirSync(blocks, { recursive: true, withFileTypes: true })) {
          if (!e.isFile()) continue
          const size = statSync(join(e.parentPath, e.name)).size
          if (size > 0 && size < bytes.byteLength) process.kill(process.pid, 'SIGKILL')
        }
        setImmediate(watch)
      }
      watch()
      await s.put(CID.parse(${JSON.stringify(cid.toString())}), bytes)
      console.log('written')
      process.exit(0)
    `
    const crashed = await runKilledChild(writer)
    expect(crashed.out).not.toContain('written')
    expect(crashed.signal).toBe('SIGKILL')
    // what the crash left: a partial temporary file, nothing under the block's own name
    const left = (await readdir(blocks, { recursive: true, withFileTypes: true })).filter((e) =>
      e.isFile(),
    )
    expect(left).toHaveLength(1)
    expect(
      (await stat(join(left[0]?.parentPath as string, left[0]?.name as string))).size,
    ).toBeLessThan(bytes.byteLength)

    const again = new FilestoreBlockstore(blocks, refs)
    await again.open()
    try {
      expect(await again.has(cid)).toBe(false)
      await expect(collect(again.get(cid))).rejects.toMatchObject({ name: 'NotFoundError' })
      const listed: CID[] = []
      for await (const { cid: each } of again.getAll()) listed.push(each)
      expect(listed).toEqual([])
      await again.put(cid, bytes)
      expect((await collect(again.get(cid))).equals(bytes)).toBe(true)
      // the leftover is swept once it is older than a live write could be (ADR 0063); a young
      // one may be another process's write in progress and stays
      const leftover = join(left[0]?.parentPath as string, left[0]?.name as string)
      expect(await again.sweepTemporaryFiles()).toBe(0)
      expect((await stat(leftover)).isFile()).toBe(true)
      const hoursAgo = new Date(Date.now() - 2 * 3600_000)
      await utimes(leftover, hoursAgo, hoursAgo)
      expect(await again.sweepTemporaryFiles()).toBe(1)
      await expect(stat(leftover)).rejects.toMatchObject({ code: 'ENOENT' })
      // the block written since is still there, read whole
      expect((await collect(again.get(cid))).equals(bytes)).toBe(true)
    } finally {
      await again.close()
    }
  }, 60_000)

  it("sweeps only old temporary files (its own and steno's), never a block or a stranger's file", async () => {
    const blocks = join(dir, 'sweep-blocks')
    const refs = join(dir, 'sweep-refs')
    const store = new FilestoreBlockstore(blocks, refs)
    await store.open()
    try {
      const bytes = new Uint8Array(randomBytes(1000))
      const cid = CID.createV1(raw.code, await sha256.digest(bytes))
      await store.put(cid, bytes)
      const shard = (await readdir(blocks))[0] as string
      const name = (await readdir(join(blocks, shard)))[0] as string
      const old = new Date(Date.now() - 2 * 3600_000)
      const files = {
        ours: join(blocks, shard, `${name}.123-4-0a1b2c3d4e5f.tmp`),
        steno: join(refs, shard, `.${name}.tmp`),
        young: join(blocks, shard, `${name}.99-1-ffffffffffff.tmp`),
        stranger: join(blocks, shard, 'notes.tmp'),
      }
      await mkdir(join(refs, shard), { recursive: true })
      for (const [what, path] of Object.entries(files)) {
        await writeFile(path, 'x')
        if (what !== 'young') await utimes(path, old, old)
      }
      // the block itself, as old as the leftovers
      await utimes(join(blocks, shard, name), old, old)
      expect(await store.sweepTemporaryFiles()).toBe(2)
      await expect(stat(files.ours)).rejects.toMatchObject({ code: 'ENOENT' })
      await expect(stat(files.steno)).rejects.toMatchObject({ code: 'ENOENT' })
      expect((await stat(files.young)).isFile()).toBe(true)
      expect((await stat(files.stranger)).isFile()).toBe(true)
      expect((await collect(store.get(cid))).equals(bytes)).toBe(true)
    } finally {
      await store.close()
    }
  })

  // a block copy is written through the thread pool, a reference entry (a few hundred bytes) on
  // the calling thread: both are redone, and both leave their shard folder whole
  it.each([
    ['a copied block', false],
    ['a reference entry', true],
  ] as const)('%s whose temp file a sweep removed before the rename is written again, not failed', async (_, byReference) => {
    // a sweep takes a live writer's temp file for a leftover when the clock jumped or the writer
    // was paused for an hour: here the sweep (no age limit) runs between a write and its rename
    const name = byReference ? 'race-ref' : 'race-copy'
    const store = new FilestoreBlockstore(join(dir, `${name}-blocks`), join(dir, `${name}-refs`))
    await store.open()
    let swept = 0
    shardFolderFaults.beforeRename = async () => {
      shardFolderFaults.beforeRename = undefined
      swept = await store.sweepTemporaryFiles(0)
    }
    try {
      const bytes = new Uint8Array(randomBytes(4096))
      const cid = CID.createV1(raw.code, await sha256.digest(bytes))
      if (byReference) {
        const file = join(dir, `${name}.bin`)
        await writeFile(file, bytes)
        await store.putReference(cid, { path: file, offset: 0, length: bytes.byteLength })
        expect(await store.reference(cid)).toMatchObject({ path: file, length: bytes.byteLength })
      } else {
        await store.put(cid, bytes)
      }
      expect(swept).toBe(1)
      expect((await collect(store.get(cid))).equals(bytes)).toBe(true)
      // the redone write left nothing behind in the folder it wrote to
      const folder = join(dir, `${name}-${byReference ? 'refs' : 'blocks'}`)
      const left = (await readdir(folder, { recursive: true })).filter((f) => f.endsWith('.tmp'))
      expect(left).toEqual([])
    } finally {
      shardFolderFaults.beforeRename = undefined
      await store.close()
    }
  })

  it('a node with a data folder sweeps old leftovers once it has run a while; one told not to leaves them', async () => {
    const dataDir = join(dir, 'node-sweep')
    const shard = join(dataDir, 'blocks', 'AB')
    await mkdir(shard, { recursive: true })
    const leftover = join(shard, 'CIQLEFTOVERAB.data.77-0-0123456789ab.tmp')
    await writeFile(leftover, 'half a block')
    const old = new Date(Date.now() - 2 * 3600_000)
    await utimes(leftover, old, old)
    const keeps = await createDigicapNode({ dataDir, sweepTemporaryFilesAfterMs: false })
    await new Promise((r) => setTimeout(r, 300))
    await keeps.stop()
    expect((await stat(leftover)).isFile()).toBe(true)
    const sweeps = await createDigicapNode({ dataDir, sweepTemporaryFilesAfterMs: 50 })
    try {
      const deadline = Date.now() + 5_000
      while (Date.now() < deadline && (await stat(leftover).catch(() => undefined))) {
        await new Promise((r) => setTimeout(r, 25))
      }
      await expect(stat(leftover)).rejects.toMatchObject({ code: 'ENOENT' })
    } finally {
      await sweeps.stop()
    }
  }, 30_000)

  it("reads and writes the layout blockstore-fs writes: each store reads the other's blocks", async () => {
    const { FsBlockstore } = await import('blockstore-fs')
    const blocks = join(dir, 'interop-blocks')
    const theirs = new FsBlockstore(blocks)
    await theirs.open()
    const ours = new FilestoreBlockstore(blocks, join(dir, 'interop-refs'))
    await ours.open()
    try {
      const make = async (n: number) => {
        const bytes = new Uint8Array(randomBytes(n))
        return { bytes, cid: CID.createV1(raw.code, await sha256.digest(bytes)) }
      }
      const a = await make(3000)
      const b = await make(5)
      await theirs.put(a.cid, a.bytes)
      await ours.put(b.cid, b.bytes)
      expect(await ours.has(a.cid)).toBe(true)
      expect((await collect(ours.get(a.cid))).equals(a.bytes)).toBe(true)
      expect(await theirs.has(b.cid)).toBe(true)
      expect((await collect(theirs.get(b.cid))).equals(b.bytes)).toBe(true)
      // both list the same keys, named alike (the multihash read back as a CID)
      const list = async (store: { getAll(): AsyncIterable<{ cid: CID }> }) => {
        const keys: string[] = []
        for await (const { cid } of store.getAll()) keys.push(cid.toString())
        return keys.sort()
      }
      const listed = await list(ours)
      expect(listed).toHaveLength(2)
      expect(listed).toEqual(await list(theirs as never))
      await ours.delete(a.cid)
      expect(await theirs.has(a.cid)).toBe(false)
    } finally {
      await ours.close()
      await theirs.close()
    }
  })

  it('a copy reads back as one array (blockstore-fs gave 64 KiB parts for every reader to join)', async () => {
    const store = new FilestoreBlockstore(join(dir, 'one-blocks'), join(dir, 'one-refs'))
    await store.open()
    const bytes = new Uint8Array(randomBytes(MiB))
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    await store.put(cid, bytes)
    const parts: Uint8Array[] = []
    for await (const part of store.get(cid)) parts.push(part)
    expect(parts).toHaveLength(1)
    expect(Buffer.from(parts[0] as Uint8Array).equals(bytes)).toBe(true)
    await store.close()
  })

  it('a shard folder removed by hand is made again by the next write', async () => {
    const blocks = join(dir, 'gone-blocks')
    const store = new FilestoreBlockstore(blocks, join(dir, 'gone-refs'))
    await store.open()
    const bytes = new Uint8Array(randomBytes(1000))
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    await store.put(cid, bytes)
    await rm(blocks, { recursive: true })
    expect(await store.has(cid)).toBe(false)
    await store.put(cid, bytes)
    expect((await collect(store.get(cid))).equals(bytes)).toBe(true)
    await store.close()
  })
})
