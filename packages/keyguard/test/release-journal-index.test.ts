/**
 * The release journal's in-memory index of begun entries: `pending()` (which the keyguard's
 * `status()` calls, so every `/healthz` of the pi-node's ops port) reads the begun entries
 * only, not one file per grant ever served. Real journal on disk.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReleaseJournal } from '../src/index.ts'
import { expectCode } from './compliance.ts'

let root: string
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kg-journal-index-'))
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})
let n = 0
const freshDir = () => join(root, `j${++n}`)
const grant = (i: number) => `0x${i.toString(16).padStart(64, '0')}`
const key = () => new Uint8Array(randomBytes(32))

describe('release journal index', () => {
  it('pending() reads the begun entries only, not every served grant', async () => {
    const dir = freshDir()
    const journal = await createReleaseJournal(dir)
    const k = key()
    for (let i = 0; i < 60; i++) {
      await journal.begin(grant(i), k)
      await journal.complete(grant(i))
    }
    await journal.begin(grant(1000), k)
    await journal.begin(grant(1001), k)
    await journal.served(grant(2000), k)
    // Every closed entry's file is now garbage: a pending() that reads them would throw.
    for (let i = 0; i < 60; i++) await writeFile(join(dir, `${grant(i)}.json`), '{"version":1,"gra')
    await writeFile(join(dir, `${grant(2000)}.json`), 'garbage')
    expect((await journal.pending()).map((e) => e.grantId)).toEqual([grant(1000), grant(1001)])
    await journal.complete(grant(1000))
    expect((await journal.pending()).map((e) => e.grantId)).toEqual([grant(1001)])
    // Reopened, the index is rebuilt from the folder: the corrupt files are refused as before.
    const reopened = await createReleaseJournal(dir)
    await expectCode(reopened.pending(), 'KEY_STORE_CORRUPT')
  })

  it('a corrupt file at open keeps pending() refusing until it is fixed', async () => {
    const dir = freshDir()
    const before = await createReleaseJournal(dir)
    const k = key()
    await before.begin(grant(1), k)
    await before.begin(grant(2), k)
    await before.complete(grant(2))
    await writeFile(join(dir, `${grant(2)}.json`), '{')
    const after = await createReleaseJournal(dir)
    await expectCode(after.pending(), 'KEY_STORE_CORRUPT')
    await rm(join(dir, `${grant(2)}.json`))
    expect((await after.pending()).map((e) => e.grantId)).toEqual([grant(1)])
  })

  it('stays equal to a fresh read of the folder under any begin/complete/refuse/served/reopen (property)', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('begin' as const), g: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('complete' as const), g: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('refuse' as const), g: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('served' as const), g: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('reopen' as const), g: fc.constant(0) }),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
        const dir = freshDir()
        const k = new Uint8Array(32).fill(9)
        let journal = await createReleaseJournal(dir)
        const model = new Map<number, 'begun' | 'closed'>()
        for (const { kind, g } of ops) {
          const id = grant(g)
          if (kind === 'reopen') journal = await createReleaseJournal(dir)
          else if (kind === 'begin') {
            const ok = await journal.begin(id, k).then(
              () => true,
              () => false,
            )
            if (ok) model.set(g, 'begun')
          } else if (kind === 'served') {
            const ok = await journal.served(id, k).then(
              () => true,
              () => false,
            )
            if (ok) model.set(g, 'closed')
          } else {
            const f = kind === 'complete' ? journal.complete(id) : journal.refuse(id, 'no')
            if (
              await f.then(
                () => true,
                () => false,
              )
            )
              model.set(g, 'closed')
          }
          const want = [...model]
            .filter(([, s]) => s === 'begun')
            .map(([i]) => grant(i))
            .sort()
          expect((await journal.pending()).map((e) => e.grantId)).toEqual(want)
          const fresh = await createReleaseJournal(dir)
          expect((await fresh.pending()).map((e) => e.grantId)).toEqual(want)
        }
      }),
      { numRuns: 40 },
    )
  })

  it('concurrent begins of many grants all land in the index', async () => {
    const journal = await createReleaseJournal(freshDir())
    const k = key()
    await Promise.all(Array.from({ length: 50 }, (_, i) => journal.begin(grant(i), k)))
    expect(await journal.pending()).toHaveLength(50)
    await Promise.all(Array.from({ length: 25 }, (_, i) => journal.complete(grant(i * 2))))
    expect((await journal.pending()).map((e) => e.grantId)).toEqual(
      Array.from({ length: 25 }, (_, i) => grant(i * 2 + 1)),
    )
  })
})
