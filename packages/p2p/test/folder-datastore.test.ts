import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryDatastore } from 'datastore-core'
import { FsDatastore } from 'datastore-fs'
import fc from 'fast-check'
import { Key } from 'interface-datastore'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FolderDatastore } from '../src/datastore/folder-datastore.ts'
import { runKilledChild } from './killed-child.ts'

let dir: string
let n = 0
const fresh = () => join(dir, `store-${n++}`)
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'digicap-datastore-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

type Store = Pick<MemoryDatastore, 'query' | 'queryKeys'>
const pairs = async (s: Store, prefix?: string) => {
  const out: [string, string][] = []
  for await (const { key, value } of s.query(prefix === undefined ? {} : { prefix }))
    out.push([key.toString(), Buffer.from(value).toString('hex')])
  return out.sort((a, b) => (a[0] < b[0] ? -1 : 1))
}
const keys = async (s: Store, prefix?: string) => {
  const out: string[] = []
  for await (const key of s.queryKeys(prefix === undefined ? {} : { prefix }))
    out.push(key.toString())
  return out.sort()
}

/** Keys as helia and libp2p make them: a namespace, then one to three segments. */
const keyArb = fc
  .tuple(
    fc.constantFrom('pin', 'peers', 'pins', 'dht', 'p'),
    fc.array(fc.stringMatching(/^[A-Za-z0-9_-]{1,6}$/), { minLength: 1, maxLength: 3 }),
  )
  .map(([ns, rest]) => `/${ns}/${rest.join('/')}`)

describe('FolderDatastore', () => {
  it('reads a folder datastore-fs wrote, and datastore-fs reads what it writes (the same files)', async () => {
    const folder = fresh()
    const theirs = new FsDatastore(folder)
    await theirs.open()
    const written = new Map<string, Uint8Array>()
    for (let i = 0; i < 40; i++) {
      const key = `/${['pins', 'peers', 'datastore'][i % 3]}/${i % 5}/k${i}`
      const value = randomBytes(1 + (i % 7) * 100)
      await theirs.put(new Key(key), value)
      written.set(key, value)
    }
    await theirs.put(new Key('/top'), Uint8Array.of(1, 2, 3))
    written.set('/top', Uint8Array.of(1, 2, 3))
    const ours = new FolderDatastore(folder)
    await ours.open()
    for (const [key, value] of written) {
      expect(await ours.has(new Key(key))).toBe(true)
      expect(Buffer.from(await ours.get(new Key(key))).equals(value)).toBe(true)
    }
    expect(await keys(ours)).toEqual([...written.keys()].sort())
    expect(await keys(ours, '/peers/')).toEqual(
      [...written.keys()].filter((k) => k.startsWith('/peers/')).sort(),
    )
    // and back: ours writes, datastore-fs reads and lists
    await ours.put(new Key('/pins/new/one'), Uint8Array.of(9))
    await ours.delete(new Key('/top'))
    expect(Buffer.from(await theirs.get(new Key('/pins/new/one')))).toEqual(Buffer.of(9))
    expect(await theirs.has(new Key('/top'))).toBe(false)
    expect(await keys(theirs)).toEqual(await keys(ours))
    expect(await pairs(theirs)).toEqual(await pairs(ours))
  })

  it('answers as MemoryDatastore does over random puts, deletes and prefix queries', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('put' as const),
              key: keyArb,
              value: fc.uint8Array({ maxLength: 64 }),
            }),
            fc.record({ op: fc.constant('delete' as const), key: keyArb }),
          ),
          { maxLength: 30 },
        ),
        fc.array(
          fc.oneof(
            keyArb,
            fc.constantFrom('/', '/p', '/pin', '/pin/', '/pins', '/peers/', '/peers/a', ''),
          ),
          { minLength: 1, maxLength: 4 },
        ),
        async (ops, prefixes) => {
          const ours = new FolderDatastore(fresh())
          await ours.open()
          const model = new MemoryDatastore()
          for (const o of ops) {
            if (o.op === 'put') {
              await ours.put(new Key(o.key), o.value)
              await model.put(new Key(o.key), o.value)
            } else {
              await ours.delete(new Key(o.key))
              await model.delete(new Key(o.key))
            }
          }
          for (const o of ops) {
            expect(await ours.has(new Key(o.key))).toBe(await model.has(new Key(o.key)))
          }
          expect(await pairs(ours)).toEqual(await pairs(model))
          for (const prefix of prefixes) {
            expect(await pairs(ours, prefix)).toEqual(await pairs(model, prefix))
            expect(await keys(ours, prefix)).toEqual(await keys(model, prefix))
          }
          // the base class's filters, orders, offset and limit run over these pairs as over
          // the model's
          const q = {
            prefix: '/p',
            orders: [
              (a: { key: Key }, b: { key: Key }) => (a.key.toString() < b.key.toString() ? 1 : -1),
            ],
            offset: 1,
            limit: 3,
          }
          const ordered = async (s: Store) => {
            const out: string[] = []
            for await (const { key } of s.query(q)) out.push(key.toString())
            return out
          }
          expect(await ordered(ours)).toEqual(await ordered(model))
        },
      ),
      { numRuns: 40 },
    )
  }, 60_000)

  it('lists no temporary or hidden file, and skips a value removed while a query runs', async () => {
    const folder = fresh()
    const ours = new FolderDatastore(folder)
    await ours.open()
    await ours.put(new Key('/pins/a'), Uint8Array.of(1))
    await ours.put(new Key('/pins/b'), Uint8Array.of(2))
    // a writer's leftover (killed between its write and its rename), steno's, a hidden folder
    await writeFile(join(folder, 'pins', 'c.data.123-4-abcdef.tmp'), 'partial')
    await writeFile(join(folder, 'pins', '.d.data.tmp'), 'partial')
    await mkdir(join(folder, '.hidden'))
    await writeFile(join(folder, '.hidden', 'e.data'), 'x')
    await writeFile(join(folder, 'pins', 'notes.txt'), 'x')
    expect(await keys(ours)).toEqual(['/pins/a', '/pins/b'])
    const seen: string[] = []
    for await (const { key } of ours.query({})) {
      seen.push(key.toString())
      if (seen.length === 1) await ours.delete(new Key('/pins/b'))
    }
    expect(seen).toEqual(['/pins/a'])
  })

  it('never reads or writes outside its folder (a key with .. segments)', async () => {
    const folder = fresh()
    const ours = new FolderDatastore(folder)
    await ours.open()
    const outside = new Key('/../../escaped')
    await expect(ours.put(outside, Uint8Array.of(1))).rejects.toMatchObject({
      name: 'PutFailedError',
    })
    await expect(ours.get(outside)).rejects.toMatchObject({ name: 'NotFoundError' })
    expect(await ours.has(outside)).toBe(false)
    await ours.delete(outside)
    expect((await readdir(dir)).some((f) => f.startsWith('escaped'))).toBe(false)
  })

  it('gives the stores’ typed errors: a missing value, a folder that is a file, a put that cannot write', async () => {
    const folder = fresh()
    const ours = new FolderDatastore(folder)
    await ours.open()
    await expect(ours.get(new Key('/nothing/here'))).rejects.toMatchObject({
      name: 'NotFoundError',
    })
    await ours.delete(new Key('/nothing/here')) // not an error
    const file = join(dir, `a-file-${n++}`)
    await writeFile(file, 'x')
    await expect(new FolderDatastore(file).open()).rejects.toMatchObject({
      name: 'OpenFailedError',
    })
    // a key whose folder is a file
    await ours.put(new Key('/blocker'), Uint8Array.of(1))
    await writeFile(join(folder, 'blocker'), 'a file where a folder would go')
    await expect(ours.put(new Key('/blocker/child'), Uint8Array.of(2))).rejects.toMatchObject({
      name: 'PutFailedError',
    })
    // nothing of the failed put is left
    expect((await readdir(folder)).sort()).toEqual(['blocker', 'blocker.data'])
    const aborted = AbortSignal.abort()
    await expect(ours.put(new Key('/x'), Uint8Array.of(1), { signal: aborted })).rejects.toThrow()
    expect(await ours.has(new Key('/x'))).toBe(false)
  })

  it('keeps a value whole or leaves the old one when the writer is killed (SIGKILL) mid-put', async () => {
    const folder = fresh()
    const before = new Uint8Array(4 * 1024 * 1024).fill(1)
    const ours = new FolderDatastore(folder)
    await ours.open()
    await ours.put(new Key('/pins/big'), before)
    // a real crash mid-write: the writing process kills itself once a temporary file beside the
    // key's holds some of the new value and not all
    const store = new URL('../src/datastore/folder-datastore.ts', import.meta.url).href
    const size = 64 * 1024 * 1024
    const writer = `
      import { readdirSync, statSync } from 'node:fs'
      import { join } from 'node:path'
      import { Key } from 'interface-datastore'
      const { FolderDatastore } = await import(${JSON.stringify(store)})
      const folder = ${JSON.stringify(folder)}
      const s = new FolderDatastore(folder)
      await s.open()
      const watch = () => {
        for (const e of readdirSync(join(folder, 'pins'))) {
          if (!e.endsWith('.tmp')) continue
          const size = statSync(join(folder, 'pins', e)).size
          if (size > 0 && size < ${size}) process.kill(process.pid, 'SIGKILL')
        }
        setImmediate(watch)
      }
      watch()
      await s.put(new Key('/pins/big'), new Uint8Array(${size}).fill(2))
      console.log('written')
      process.exit(0)
    `
    const crashed = await runKilledChild(writer)
    expect(crashed.out).not.toContain('written')
    expect(crashed.signal).toBe('SIGKILL')
    const again = new FolderDatastore(folder)
    await again.open()
    // the old value, whole; the leftover is not a key
    expect(Buffer.from(await again.get(new Key('/pins/big'))).equals(before)).toBe(true)
    expect(await keys(again)).toEqual(['/pins/big'])
    const left = (await readdir(join(folder, 'pins'))).filter((f) => f.endsWith('.tmp'))
    expect(left).toHaveLength(1)
    expect((await stat(join(folder, 'pins', left[0] as string))).size).toBeLessThan(size)
    // and the next put replaces it whole
    await again.put(new Key('/pins/big'), Uint8Array.of(3))
    expect(Buffer.from(await again.get(new Key('/pins/big')))).toEqual(Buffer.of(3))
  }, 60_000)
})
