/**
 * Reference packs (ADR 0102): an add by reference writes one pack for the whole file instead of
 * an entry per leaf. Each promise is tried: a pack written by hand from the layout's text reads
 * back; any damaged byte or truncation is no pack (never a wrong reference); a pack another
 * process writes is seen by an open store; a kill -9 mid-write leaves the old pack whole;
 * deleting a block rewrites its pack; the old one-entry-per-block layout still reads.
 */
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryBlockstore } from 'blockstore-core'
import { CID } from 'multiformats/cid'
import { create } from 'multiformats/hashes/digest'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ABSENT_RECHECK_MS, DELETE_BATCH } from '../src/filestore/filestore-blockstore.ts'
import { PACK_RECHECK_MS, packFolderFaults } from '../src/filestore/pack-folder.ts'
import { decodeReferencePack, MAX_PACK_BYTES } from '../src/filestore/reference-pack.ts'
import {
  FilestoreBlockstore,
  filestoreFolder,
  importCapsule,
  openDataDirBlockstore,
  openFsCapsuleImporter,
} from '../src/import.ts'
import { collect, leavesOf } from './bytes.ts'
import { runKilledChild } from './killed-child.ts'

const MiB = 1_048_576

/** Files under `dir`, relative paths, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort()
}

/**
 * A pack written from ADR 0102's layout alone (not with the package's encoder): magic, header
 * length and JSON, count, sorted 44-byte entries, SHA-256 of all before.
 */
function handPack(
  path: string,
  stamp: { size: number; mtimeMs: number } | undefined,
  entries: { digest: Uint8Array; offset: number; length: number }[],
  order: 'sorted' | 'as-given' = 'sorted',
): Buffer {
  const header = Buffer.from(JSON.stringify(stamp ? { path, stamp } : { path }), 'utf8')
  const list =
    order === 'sorted' ? [...entries].sort((a, b) => Buffer.compare(a.digest, b.digest)) : entries
  const body: Buffer[] = [Buffer.from('DCRPACK1', 'ascii')]
  const u32 = (n: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(n)
    return b
  }
  body.push(u32(header.length), header, u32(list.length))
  for (const e of list) {
    const offset = Buffer.alloc(8)
    offset.writeBigUInt64LE(BigInt(e.offset))
    body.push(Buffer.from(e.digest), offset, u32(e.length))
  }
  const before = Buffer.concat(body)
  return Buffer.concat([before, createHash('sha256').update(before).digest()])
}

/**
 * A pack from raw parts, checksum made right: `header` as its bytes (any), `entries` as 44-byte
 * records already laid out. For the rules the checksum would otherwise hide.
 */
function rawPack(header: Uint8Array, entries: Uint8Array, magic = 'DCRPACK1'): Buffer {
  const before = Buffer.alloc(8 + 4 + header.byteLength + 4 + entries.byteLength)
  before.write(magic, 0, 'latin1')
  before.writeUInt32LE(header.byteLength, 8)
  before.set(header, 12)
  before.writeUInt32LE(entries.byteLength / 44, 12 + header.byteLength)
  before.set(entries, 16 + header.byteLength)
  return Buffer.concat([before, createHash('sha256').update(before).digest()])
}

/** One 44-byte entry record. */
function record(digest: Uint8Array, offset: bigint, length: number): Buffer {
  const r = Buffer.alloc(44)
  r.set(digest)
  r.writeBigUInt64LE(offset, 32)
  r.writeUInt32LE(length, 40)
  return r
}

/** An empty packs folder under `<dir>/<name>-refs`, and a 1000-byte file of one leaf. */
async function packsAndOneLeafIn(dir: string, name: string, fileName: string) {
  const refs = join(dir, `${name}-refs`)
  const packs = join(refs, 'packs')
  await mkdir(packs, { recursive: true })
  const file = join(dir, fileName)
  const bytes = randomBytes(1000)
  await writeFile(file, bytes)
  const [leaf] = await leavesOf(bytes)
  return { refs, packs, file, cid: (leaf as { cid: CID }).cid }
}

/**
 * A reader lists a packs folder whose mtime is `tick`; a writer adds a pack and sets the mtime
 * back to `tick` (a file system whose clock tick is coarse leaves it there); the reader looks
 * again `wait()` ms later. The length of the reference it then finds, if any.
 */
async function seenAfterRacyWrite(
  dir: string,
  name: string,
  tick: Date,
  wait: () => number,
): Promise<number | undefined> {
  const { refs, packs, file, cid } = await packsAndOneLeafIn(dir, name, `${name}.bin`)
  const reader = new FilestoreBlockstore(join(dir, `${name}-blocks`), refs)
  const writer = new FilestoreBlockstore(join(dir, `${name}-blocks`), refs)
  await reader.open()
  await writer.open()
  try {
    await utimes(packs, tick, tick)
    expect(await reader.reference(cid)).toBeUndefined()
    await writer.putReferences(file, undefined, [
      { digest: cid.multihash.digest, offset: 0, length: 1000 },
    ])
    await utimes(packs, tick, tick)
    await new Promise((r) => setTimeout(r, wait()))
    return (await reader.reference(cid))?.length
  } finally {
    await reader.close()
    await writer.close()
  }
}

/** `file` added to `dataDir`'s store by reference, as `pi-node seal` adds: its root CID. */
async function addByReference(dataDir: string, file: string): Promise<string> {
  const importer = await openFsCapsuleImporter(dataDir, { referenceFiles: true })
  try {
    return await importer.put({ path: file })
  } finally {
    await importer.close()
  }
}

/** `<dir>/<name>.bin` of `size` random bytes, added by reference to `<dir>/<name>`. */
async function fileAddedByReference(dir: string, name: string, size: number) {
  const dataDir = join(dir, name)
  const file = join(dir, `${name}.bin`)
  const bytes = randomBytes(size)
  await writeFile(file, bytes)
  return { dataDir, file, bytes, root: await addByReference(dataDir, file) }
}

describe('reference packs: a file’s references in one pack', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'digicap-packs-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('an add by reference writes one pack, no entry per leaf; every leaf reads back, listed once', async () => {
    const dataDir = join(dir, 'one')
    const file = join(dir, 'one.bin')
    // past 32 MiB: the leaves are hashed on capsule-core's lanes, as a seal's are
    const bytes = randomBytes(40 * MiB + 3)
    await writeFile(file, bytes)
    const cid = await addByReference(dataDir, file)
    expect(cid).toBe(String(await importCapsule(bytes, new MemoryBlockstore())))
    const packName = `${createHash('sha256').update(file).digest('hex').slice(0, 32)}.pack`
    expect(await filesUnder(filestoreFolder(dataDir))).toEqual([`packs/${packName}`])
    // 41 leaves, 44 bytes each, and the header: a few KiB
    expect((await stat(join(filestoreFolder(dataDir), 'packs', packName))).size).toBeLessThan(
      41 * 44 + 512,
    )

    const store = await openDataDirBlockstore(dataDir)
    try {
      const expected = await leavesOf(bytes)
      for (const leaf of expected) {
        expect(await store.has(leaf.cid)).toBe(true)
        expect((await store.reference(leaf.cid))?.offset).toBe(leaf.offset)
        const got = await collect(store.get(leaf.cid))
        expect(got.equals(bytes.subarray(leaf.offset, leaf.offset + leaf.length))).toBe(true)
      }
      const listed = new Map<string, number>()
      for await (const { cid: each } of store.getAll()) {
        const id = Buffer.from(each.multihash.bytes).toString('hex')
        listed.set(id, (listed.get(id) ?? 0) + 1)
      }
      for (const leaf of expected) {
        expect(listed.get(Buffer.from(leaf.cid.multihash.bytes).toString('hex'))).toBe(1)
      }
    } finally {
      await store.close()
    }

    // added again (the file rewritten): its pack is replaced, not joined by a second one
    const next = randomBytes(2 * MiB)
    await writeFile(file, next)
    await addByReference(dataDir, file)
    expect(await filesUnder(filestoreFolder(dataDir))).toEqual([`packs/${packName}`])
    const reread = await openDataDirBlockstore(dataDir)
    try {
      const [first] = await leavesOf(next)
      expect(
        (await collect(reread.get((first as { cid: CID }).cid))).equals(next.subarray(0, MiB)),
      ).toBe(true)
      const [old] = await leavesOf(bytes)
      expect(await reread.has((old as { cid: CID }).cid)).toBe(false)
    } finally {
      await reread.close()
    }
  }, 60_000)

  it('reads a pack written by hand from the layout; entries out of order, or any damaged byte or truncation, are no pack', async () => {
    const file = join(dir, 'hand.bin')
    const bytes = randomBytes(3 * MiB + 100)
    await writeFile(file, bytes)
    const info = await stat(file)
    const stamp = { size: info.size, mtimeMs: info.mtimeMs }
    const ls = await leavesOf(bytes)
    const entries = ls.map((l) => ({
      digest: l.cid.multihash.digest,
      offset: l.offset,
      length: l.length,
    }))
    const refs = join(dir, 'hand-refs')
    const packs = join(refs, 'packs')
    const packFile = join(packs, `${'ab'.repeat(16)}.pack`)
    const good = handPack(file, stamp, entries)
    await rm(refs, { recursive: true, force: true })
    await mkdir(packs, { recursive: true })

    const readsAs = async (packBytes: Uint8Array) => {
      await writeFile(packFile, packBytes)
      // a fresh store each time: what a node started on this folder would read
      const store = new FilestoreBlockstore(join(dir, 'hand-blocks'), refs)
      await store.open()
      try {
        const found: boolean[] = []
        for (const l of ls) found.push((await store.reference(l.cid)) !== undefined)
        return found
      } finally {
        await store.close()
      }
    }
    expect(await readsAs(good)).toEqual(ls.map(() => true))
    const store = new FilestoreBlockstore(join(dir, 'hand-blocks'), refs)
    await store.open()
    for (const l of ls) {
      const got = await collect(store.get(l.cid))
      expect(got.equals(bytes.subarray(l.offset, l.offset + l.length))).toBe(true)
    }
    await store.close()

    const none = ls.map(() => false)
    // order broken (two entries swapped), checksum made right: refused for the order alone
    const swapped = [...entries].sort((a, b) => Buffer.compare(b.digest, a.digest))
    expect(await readsAs(handPack(file, stamp, swapped, 'as-given'))).toEqual(none)
    // a relative path, a bad stamp, a block longer than bitswap carries: refused
    expect(await readsAs(handPack('hand.bin', stamp, entries))).toEqual(none)
    expect(await readsAs(handPack(file, { size: -1, mtimeMs: stamp.mtimeMs }, entries))).toEqual(
      none,
    )
    const tooLong = entries.map((e, i) => (i === 0 ? { ...e, length: 4 * MiB + 1 } : e))
    expect(await readsAs(handPack(file, stamp, tooLong))).toEqual(none)
    // every single byte flipped: never a reference (the checksum covers every byte)
    for (let at = 0; at < good.length; at++) {
      const bad = Buffer.from(good)
      bad[at] = (bad[at] as number) ^ 0x40
      expect(await readsAs(bad), `byte ${at} flipped`).toEqual(none)
    }
    // every truncation, and one byte more
    for (let length = 0; length < good.length; length += 7) {
      expect(await readsAs(good.subarray(0, length)), `cut at ${length}`).toEqual(none)
    }
    expect(await readsAs(Buffer.concat([good, Buffer.of(0)]))).toEqual(none)
    expect(await readsAs(good)).toEqual(ls.map(() => true))
  }, 120_000)

  it('a file in the packs folder larger than any pack is never read (a sparse 1.5 GiB one: no time, no memory)', async () => {
    const { refs, packs, file, cid } = await packsAndOneLeafIn(dir, 'huge', 'huge-target.bin')
    // a good pack beside it still reads
    await writeFile(
      join(packs, `${'cd'.repeat(16)}.pack`),
      handPack(file, undefined, [{ digest: cid.multihash.digest, offset: 0, length: 1000 }]),
    )
    const huge = join(packs, `${'ef'.repeat(16)}.pack`)
    await writeFile(huge, '')
    await truncate(huge, 1536 * MiB)
    const store = new FilestoreBlockstore(join(dir, 'huge-blocks'), refs)
    await store.open()
    try {
      const rss = process.memoryUsage().rss
      const started = performance.now()
      expect((await store.reference(cid))?.length).toBe(1000)
      const [other] = await leavesOf(randomBytes(10))
      expect(await store.reference((other as { cid: CID }).cid)).toBeUndefined()
      // reading it would take seconds and 1.5 GiB; a stat is all it costs
      expect(performance.now() - started).toBeLessThan(500)
      expect(process.memoryUsage().rss - rss).toBeLessThan(64 * MiB)
    } finally {
      await store.close()
    }
  })

  it('a pack another process writes is seen by an open store (within ABSENT_RECHECK_MS + PACK_RECHECK_MS)', async () => {
    const dataDir = join(dir, 'shared')
    const file = join(dir, 'shared.bin')
    const bytes = randomBytes(2 * MiB + 1)
    await writeFile(file, bytes)
    const [leaf] = await leavesOf(bytes)
    const cid = (leaf as { cid: CID }).cid
    const serving = await openDataDirBlockstore(dataDir)
    try {
      expect(await serving.has(cid)).toBe(false)
      // "pi-node seal" in another process while "serve" holds the store open
      const entry = new URL('../src/import.ts', import.meta.url).href
      const out = await runKilledChild(`
        const { openFsCapsuleImporter } = await import(${JSON.stringify(entry)})
        const i = await openFsCapsuleImporter(${JSON.stringify(dataDir)}, { referenceFiles: true })
        console.log(await i.put({ path: ${JSON.stringify(file)} }))
        await i.close()
        process.exit(0)`)
      expect(out.signal).toBeNull()
      expect(out.out.trim()).toBe(String(await importCapsule(bytes, new MemoryBlockstore())))
      await new Promise((r) => setTimeout(r, ABSENT_RECHECK_MS + PACK_RECHECK_MS + 50))
      expect(await serving.has(cid)).toBe(true)
      expect((await collect(serving.get(cid))).equals(bytes.subarray(0, MiB))).toBe(true)
    } finally {
      await serving.close()
    }
  }, 60_000)

  it('a pack written in the same mtime tick as the folder was last read is still seen (coarse timestamps)', async () => {
    // the folder's mtime a whole second a moment ago; the reader looks again 100 ms later
    const tick = new Date(Math.floor(Date.now() / 1000) * 1000 - 500)
    expect(await seenAfterRacyWrite(dir, 'racy', tick, () => PACK_RECHECK_MS + 20)).toBe(1000)
  })

  it('a process killed between writing a pack and renaming it leaves the old pack whole; the leftover is swept', async () => {
    const { dataDir, file, bytes: first } = await fileAddedByReference(dir, 'killed', 3 * MiB)
    const second = randomBytes(5 * MiB)
    await writeFile(file, second)
    const entry = new URL('../src/import.ts', import.meta.url).href
    const faults = new URL('../src/filestore/pack-folder.ts', import.meta.url).href
    const crashed = await runKilledChild(`
      const { packFolderFaults } = await import(${JSON.stringify(faults)})
      packFolderFaults.beforeRename = async () => process.kill(process.pid, 'SIGKILL')
      const { openFsCapsuleImporter } = await import(${JSON.stringify(entry)})
      const i = await openFsCapsuleImporter(${JSON.stringify(dataDir)}, { referenceFiles: true })
      await i.put({ path: ${JSON.stringify(file)} })
      console.log('renamed')`)
    expect(crashed.signal).toBe('SIGKILL')
    expect(crashed.out).not.toContain('renamed')
    const files = await filesUnder(join(filestoreFolder(dataDir), 'packs'))
    expect(files).toHaveLength(2) // the old pack and the killed writer's temporary file
    const store = await openDataDirBlockstore(dataDir)
    try {
      // the old pack, whole: its references name the file as it was (its stamp no longer
      // matches, so each read is hashed and refused; nothing of the new pack is there)
      for (const leaf of await leavesOf(first)) {
        expect((await store.reference(leaf.cid))?.length).toBe(leaf.length)
      }
      for (const leaf of await leavesOf(second)) expect(await store.has(leaf.cid)).toBe(false)
      const temp = join(
        filestoreFolder(dataDir),
        'packs',
        files.find((f) => f.endsWith('.tmp')) as string,
      )
      expect(await store.sweepTemporaryFiles()).toBe(0)
      const hoursAgo = new Date(Date.now() - 2 * 3600_000)
      await utimes(temp, hoursAgo, hoursAgo)
      expect(await store.sweepTemporaryFiles()).toBe(1)
      expect(await filesUnder(join(filestoreFolder(dataDir), 'packs'))).toHaveLength(1)
    } finally {
      await store.close()
    }
  }, 60_000)

  it('deleting a packed block rewrites its pack without it; the last one removes the pack', async () => {
    const { dataDir, bytes, root } = await fileAddedByReference(dir, 'delete', 3 * MiB)
    const ls = await leavesOf(bytes)
    const store = await openDataDirBlockstore(dataDir)
    await store.delete((ls[1] as { cid: CID }).cid)
    expect(await store.has((ls[1] as { cid: CID }).cid)).toBe(false)
    await store.close()
    const reopened = await openDataDirBlockstore(dataDir)
    try {
      expect(await reopened.has((ls[0] as { cid: CID }).cid)).toBe(true)
      expect(await reopened.has((ls[1] as { cid: CID }).cid)).toBe(false)
      expect(await reopened.has((ls[2] as { cid: CID }).cid)).toBe(true)
      await reopened.delete((ls[0] as { cid: CID }).cid)
      await reopened.delete((ls[2] as { cid: CID }).cid)
      expect(await filesUnder(join(filestoreFolder(dataDir), 'packs'))).toEqual([])
      // the root (a copy) is untouched
      expect(await reopened.has(CID.parse(root))).toBe(true)
    } finally {
      await reopened.close()
    }
  })

  it('packs and one-entry-per-block references read side by side; a bad pack call is typed', async () => {
    const dataDir = join(dir, 'mixed')
    const store = await openDataDirBlockstore(dataDir)
    try {
      const old = join(dir, 'old.bin')
      const oldBytes = randomBytes(1000)
      await writeFile(old, oldBytes)
      const [oldLeaf] = await leavesOf(oldBytes)
      await store.putReference((oldLeaf as { cid: CID }).cid, {
        path: old,
        offset: 0,
        length: 1000,
      })
      const packed = join(dir, 'packed.bin')
      const packedBytes = randomBytes(1500)
      await writeFile(packed, packedBytes)
      const [packedLeaf] = await leavesOf(packedBytes)
      await store.putReferences(packed, undefined, [
        { digest: (packedLeaf as { cid: CID }).cid.multihash.digest, offset: 0, length: 1500 },
      ])
      expect((await collect(store.get((oldLeaf as { cid: CID }).cid))).equals(oldBytes)).toBe(true)
      expect((await collect(store.get((packedLeaf as { cid: CID }).cid))).equals(packedBytes)).toBe(
        true,
      )
      const listed: string[] = []
      for await (const { cid } of store.getAll()) listed.push(cid.toString())
      expect(listed).toHaveLength(2)
      await expect(store.putReferences('relative.bin', undefined, [])).rejects.toMatchObject({
        code: 'CAPSULE_STORE',
      })
      await expect(
        store.putReferences(packed, undefined, [
          { digest: new Uint8Array(31), offset: 0, length: 1 },
        ]),
      ).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
      await expect(
        store.putReferences(packed, undefined, [
          { digest: new Uint8Array(32), offset: 0, length: 4 * MiB + 1 },
        ]),
      ).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
      // a refused pack left the good one as it was
      expect(await store.has((packedLeaf as { cid: CID }).cid)).toBe(true)
      expect(await filesUnder(join(filestoreFolder(dataDir), 'packs'))).toHaveLength(1)
    } finally {
      await store.close()
    }
  })
  it('each layout rule on its own, checksum right: magic, header size, JSON, named stamp, strict order, block end, pack size', () => {
    const digest = (n: number) => {
      const d = Buffer.alloc(32)
      d.writeUInt32BE(n, 28)
      return d
    }
    const header = (o: unknown) => Buffer.from(JSON.stringify(o), 'utf8')
    const one = record(digest(1), 0n, 1000)
    const two = Buffer.concat([one, record(digest(2), 1000n, 1000)])
    // the control: the same builder gives a pack when every rule holds
    expect(decodeReferencePack(rawPack(header({ path: '/a.bin' }), two))?.find(digest(2))).toEqual({
      path: '/a.bin',
      offset: 1000,
      length: 1000,
    })
    expect(decodeReferencePack(rawPack(header({ path: '/a.bin' }), two, 'DCRPACK2'))).toBe(
      undefined,
    )
    // a header of 8192 bytes is one; of 8193 it is not
    const pathOf = (headerBytes: number) => `/${'p'.repeat(headerBytes - '{"path":"/"}'.length)}`
    expect(header({ path: pathOf(8192) }).byteLength).toBe(8192)
    expect(decodeReferencePack(rawPack(header({ path: pathOf(8192) }), one))).toBeDefined()
    expect(decodeReferencePack(rawPack(header({ path: pathOf(8193) }), one))).toBe(undefined)
    // not UTF-8, not JSON, not an object
    expect(decodeReferencePack(rawPack(Buffer.from([0x7b, 0xff, 0x7d]), one))).toBe(undefined)
    expect(decodeReferencePack(rawPack(Buffer.from('{"path":'), one))).toBe(undefined)
    expect(decodeReferencePack(rawPack(header(['/a.bin']), one))).toBe(undefined)
    // a stamp named is a whole stamp: null is not "no stamp"
    expect(decodeReferencePack(rawPack(header({ path: '/a.bin', stamp: null }), one))).toBe(
      undefined,
    )
    expect(decodeReferencePack(rawPack(header({ path: '/a.bin', stamp: { size: 5 } }), one))).toBe(
      undefined,
    )
    // strictly ascending: the same digest twice is refused, not only a smaller one
    expect(
      decodeReferencePack(rawPack(header({ path: '/a.bin' }), Buffer.concat([one, one]))),
    ).toBe(undefined)
    // the block's end a whole number: offset + length ≤ 2^53 − 1
    const max = BigInt(Number.MAX_SAFE_INTEGER)
    expect(
      decodeReferencePack(
        rawPack(header({ path: '/a.bin' }), record(digest(1), max - 1000n, 1000)),
      ),
    ).toBeDefined()
    expect(
      decodeReferencePack(rawPack(header({ path: '/a.bin' }), record(digest(1), max - 999n, 1000))),
    ).toBe(undefined)
    // larger than MAX_PACK_BYTES, every other rule kept: no pack
    const count = Math.ceil(MAX_PACK_BYTES / 44)
    const many = Buffer.alloc(count * 44)
    for (let i = 0; i < count; i++) {
      many.writeUInt32BE(i + 1, i * 44 + 28)
      many.writeUInt32LE(1, i * 44 + 40)
    }
    const big = rawPack(header({ path: '/a.bin' }), many)
    expect(big.byteLength).toBeGreaterThan(MAX_PACK_BYTES)
    expect(decodeReferencePack(big)).toBe(undefined)
    expect(
      decodeReferencePack(rawPack(header({ path: '/a.bin' }), many.subarray(0, 44 * 1000))),
    ).toBeDefined()
  }, 60_000)

  it('a listing made within 2 s of the folder’s last change is made again, even looked at after those 2 s', async () => {
    // the folder changed 1.5 s ago, the reader lists it now (a racy listing) and looks again
    // more than 2 s after the mtime
    const tick = new Date(Date.now() - 1500)
    const wait = () => Math.max(PACK_RECHECK_MS + 20, tick.getTime() + 2300 - Date.now())
    expect(await seenAfterRacyWrite(dir, 'racy-late', tick, wait)).toBe(1000)
  })

  it('two deletes from one pack at once both hold; a delete beside a new add of the same file loses neither', async () => {
    const { dataDir, file, bytes } = await fileAddedByReference(dir, 'concurrent-delete', 4 * MiB)
    const ls = (await leavesOf(bytes)).map((l) => l.cid)
    const store = await openDataDirBlockstore(dataDir)
    try {
      await Promise.all([store.delete(ls[0] as CID), store.delete(ls[1] as CID)])
      expect(await store.has(ls[0] as CID)).toBe(false)
      expect(await store.has(ls[1] as CID)).toBe(false)
    } finally {
      await store.close()
    }
    const reopened = await openDataDirBlockstore(dataDir)
    try {
      expect(await reopened.has(ls[0] as CID)).toBe(false)
      expect(await reopened.has(ls[1] as CID)).toBe(false)
      expect(await reopened.has(ls[2] as CID)).toBe(true)
      // the file sealed again with new bytes while an old block is deleted: the new pack stands
      const next = randomBytes(2 * MiB)
      const nextLeaves = await leavesOf(next)
      await writeFile(file, next)
      const info = await stat(file)
      await Promise.all([
        reopened.delete(ls[2] as CID),
        reopened.putReferences(
          file,
          { size: info.size, mtimeMs: info.mtimeMs },
          nextLeaves.map((l) => ({
            digest: l.cid.multihash.digest,
            offset: l.offset,
            length: l.length,
          })),
        ),
      ])
      for (const l of nextLeaves) expect(await reopened.has(l.cid)).toBe(true)
    } finally {
      await reopened.close()
    }
  })

  it('the same bytes added from two files: the newest pack answers, so deleting either file keeps them served', async () => {
    const dataDir = join(dir, 'two-paths')
    const bytes = randomBytes(MiB + 10)
    const a = join(dir, 'two-paths-a.bin')
    const b = join(dir, 'two-paths-b.bin')
    await writeFile(a, bytes)
    await writeFile(b, bytes)
    const [leaf] = await leavesOf(bytes)
    const cid = (leaf as { cid: CID }).cid
    const servedAfterRemoving = async (gone: string) => {
      await rm(gone)
      const store = await openDataDirBlockstore(dataDir)
      try {
        return (
          (await store.has(cid)) && (await collect(store.get(cid))).equals(bytes.subarray(0, MiB))
        )
      } finally {
        await store.close()
        await writeFile(gone, bytes)
      }
    }
    await addByReference(dataDir, a)
    await new Promise((r) => setTimeout(r, 20))
    await addByReference(dataDir, b)
    expect(await servedAfterRemoving(a)).toBe(true)
    await new Promise((r) => setTimeout(r, 20))
    await addByReference(dataDir, a)
    expect(await servedAfterRemoving(b)).toBe(true)
  })

  it('a FIFO named like a pack is never read (no blocked thread)', async () => {
    const { refs, packs, file, cid } = await packsAndOneLeafIn(dir, 'fifo', 'fifo.bin')
    execFileSync('mkfifo', [join(packs, `${'12'.repeat(16)}.pack`)])
    await writeFile(
      join(packs, `${'34'.repeat(16)}.pack`),
      handPack(file, undefined, [{ digest: cid.multihash.digest, offset: 0, length: 1000 }]),
    )
    const store = new FilestoreBlockstore(join(dir, 'fifo-blocks'), refs)
    await store.open()
    try {
      expect((await store.reference(cid))?.length).toBe(1000)
      const [other] = await leavesOf(randomBytes(10))
      expect(await store.reference((other as { cid: CID }).cid)).toBeUndefined()
    } finally {
      await store.close()
    }
  })
  it('deleteMany writes each pack once a batch, not once a block, and yields every block once it is gone', async () => {
    const { refs, file } = await packsAndOneLeafIn(dir, 'many', 'many.bin')
    const store = new FilestoreBlockstore(join(dir, 'many-blocks'), refs)
    await store.open()
    const renames: string[] = []
    try {
      // 2.5 batches of references (their bytes never read here)
      const count = Math.floor(DELETE_BATCH * 2.5)
      const digests = Array.from({ length: count }, () => new Uint8Array(randomBytes(32)))
      await store.putReferences(
        file,
        undefined,
        digests.map((digest) => ({ digest, offset: 0, length: 1 })),
      )
      const cids = digests.map((d) => CID.createV1(0x55, create(0x12, d)))
      const keep = cids.pop() as CID
      packFolderFaults.beforeRename = async (temp) => {
        renames.push(temp)
      }
      const yielded: string[] = []
      for await (const cid of store.deleteMany(cids)) {
        // yielded once gone: the pack no longer names it
        expect(await store.reference(cid)).toBeUndefined()
        yielded.push(cid.toString())
      }
      expect(yielded).toEqual(cids.map(String))
      // three batches, each pack written once a batch: 3 writes (not count - 1)
      expect(renames).toHaveLength(3)
      expect(await store.reference(keep)).toBeDefined()
      const last: CID[] = []
      for await (const cid of store.deleteMany([keep])) last.push(cid)
      expect(last).toEqual([keep])
      expect(await filesUnder(join(refs, 'packs'))).toEqual([])
    } finally {
      packFolderFaults.beforeRename = undefined
      await store.close()
    }
  })
  it('a pack whose temp file a sweep took before its rename is written once more', async () => {
    const { refs, file, cid } = await packsAndOneLeafIn(dir, 'swept', 'swept.bin')
    const store = new FilestoreBlockstore(join(dir, 'swept-blocks'), refs)
    await store.open()
    let taken = 0
    try {
      packFolderFaults.beforeRename = async (temp) => {
        if (taken++ === 0) await rm(temp)
      }
      await store.putReferences(file, undefined, [
        { digest: cid.multihash.digest, offset: 0, length: 1000 },
      ])
      expect(taken).toBe(2)
    } finally {
      packFolderFaults.beforeRename = undefined
      await store.close()
    }
    const reopened = new FilestoreBlockstore(join(dir, 'swept-blocks'), refs)
    await reopened.open()
    try {
      expect((await reopened.reference(cid))?.length).toBe(1000)
      expect((await filesUnder(join(refs, 'packs'))).filter((f) => f.endsWith('.tmp'))).toEqual([])
    } finally {
      await reopened.close()
    }
  })
})
