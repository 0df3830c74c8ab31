import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  AlreadyReleasedError,
  createReleaseJournal,
  GrantKeyMismatchError,
  GrantRefusedError,
} from '../src/index.ts'
import { expectCode } from './compliance.ts'
import { runAndKill } from './crash.ts'

let root: string
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kg-journal-'))
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})
let n = 0
const freshDir = () => join(root, `j${++n}`)
const GRANT = `0x${'cd'.repeat(32)}`
const key = () => new Uint8Array(randomBytes(32))

describe('release journal', () => {
  it('begins, completes, and then refuses the grant forever', async () => {
    const journal = await createReleaseJournal(freshDir())
    const k = key()
    const { entry, resumed } = await journal.begin(GRANT, k, { capsuleId: '0xAA' })
    expect(resumed).toBe(false)
    expect(entry).toMatchObject({ grantId: GRANT, state: 'begun', capsuleId: '0xaa' })
    expect(await journal.pending()).toHaveLength(1)
    const done = await journal.complete(GRANT)
    expect(done.state).toBe('completed')
    expect(await journal.complete(GRANT)).toEqual(done) // idempotent ack
    expect(await journal.pending()).toEqual([])
    const err = await expectCode(journal.begin(GRANT, k), 'ALREADY_RELEASED')
    expect(err).toBeInstanceOf(AlreadyReleasedError)
  })

  it('records a grant served inline (fast path) as completed: never begun, served or pending again', async () => {
    const dir = freshDir()
    const journal = await createReleaseJournal(dir)
    const k = key()
    const entry = await journal.served(GRANT, k, { capsuleId: '0xAA' })
    expect(entry).toMatchObject({ state: 'completed', via: 'fast-path', capsuleId: '0xaa' })
    const reopened = await createReleaseJournal(dir)
    expect(await reopened.get(GRANT)).toEqual(entry)
    expect(await reopened.pending()).toEqual([])
    expect(await expectCode(reopened.begin(GRANT, k), 'ALREADY_RELEASED')).toBeInstanceOf(
      AlreadyReleasedError,
    )
    await expectCode(reopened.served(GRANT, k), 'ALREADY_RELEASED')
    // A grant begun on the chain path cannot be claimed as served inline either.
    const other = `0x${'ef'.repeat(32)}`
    await reopened.begin(other, k)
    await expectCode(reopened.served(other, k), 'ALREADY_RELEASED')
    // `via` only on a completed entry.
    const file = join(dir, `${other}.json`)
    const obj = JSON.parse(await readFile(file, 'utf8'))
    await writeFile(file, JSON.stringify({ ...obj, via: 'fast-path' }))
    await expectCode(reopened.get(other), 'KEY_STORE_CORRUPT')
  })

  it('closes a begun grant as refused: never pending, begun, completed or served again, across restarts', async () => {
    const dir = freshDir()
    const journal = await createReleaseJournal(dir)
    const k = key()
    await journal.begin(GRANT, k, { capsuleId: '0xAA' })
    const refused = await journal.refuse(GRANT, 'not-attested evidence:QUOTE_RUN_PCR')
    expect(refused).toMatchObject({
      state: 'refused',
      reason: 'not-attested evidence:QUOTE_RUN_PCR',
      capsuleId: '0xaa',
    })
    const reopened = await createReleaseJournal(dir)
    expect(await reopened.get(GRANT)).toEqual(refused)
    expect(await reopened.pending()).toEqual([])
    const err = await expectCode(reopened.begin(GRANT, k), 'GRANT_REFUSED')
    expect(err).toBeInstanceOf(GrantRefusedError)
    expect(err.details.reason).toBe('refused')
    // an ack that arrives late does not turn it into a release; a second refusal changes nothing
    expect(await reopened.complete(GRANT)).toEqual(refused)
    expect(await reopened.refuse(GRANT, 'other')).toEqual(refused)
    await expectCode(reopened.served(GRANT, k), 'ALREADY_RELEASED')
    // a completed grant stays completed
    const other = `0x${'ef'.repeat(32)}`
    await reopened.begin(other, k)
    const done = await reopened.complete(other)
    expect(await reopened.refuse(other, 'late')).toEqual(done)
    // never begun, or a reason that does not fit
    await expectCode(reopened.refuse(`0x${'01'.repeat(32)}`, 'x'), 'RELEASE_NOT_BEGUN')
    await expectCode(reopened.refuse(other, 'x'.repeat(257)), 'INVALID_ARGUMENT')
    // `refusedAt` and `reason` only on a refused entry, and well-formed there
    const file = join(dir, `${GRANT}.json`)
    const obj = JSON.parse(await readFile(file, 'utf8'))
    for (const bad of [
      { ...obj, state: 'begun' },
      { ...obj, reason: 7 },
      { ...obj, reason: 'x'.repeat(257) },
      { ...obj, refusedAt: 'yesterday' },
    ]) {
      await writeFile(file, JSON.stringify(bad))
      await expectCode(reopened.get(GRANT), 'KEY_STORE_CORRUPT')
    }
  })

  it('re-serves the same key after a crash between unwrap and ack, across a restart', async () => {
    const dir = freshDir()
    const k = key()
    const before = await createReleaseJournal(dir)
    await before.begin(GRANT, k)
    // "Crash": the process is gone; a new journal opens the same directory.
    const after = await createReleaseJournal(dir)
    expect((await after.pending()).map((e) => e.grantId)).toEqual([GRANT])
    const again = await after.begin(GRANT, Uint8Array.from(k))
    expect(again.resumed).toBe(true)
    await after.complete(GRANT)
    const restarted = await createReleaseJournal(dir)
    await expectCode(restarted.begin(GRANT, k), 'ALREADY_RELEASED')
  })

  it('refuses another executor key for a begun or completed grant, across restarts', async () => {
    const dir = freshDir()
    const journal = await createReleaseJournal(dir)
    await journal.begin(GRANT, key())
    const err = await expectCode(journal.begin(GRANT, key()), 'GRANT_KEY_MISMATCH')
    expect(err).toBeInstanceOf(GrantKeyMismatchError)
    await expectCode((await createReleaseJournal(dir)).begin(GRANT, key()), 'GRANT_KEY_MISMATCH')
    await journal.complete(GRANT)
    await expectCode(journal.begin(GRANT, key()), 'GRANT_KEY_MISMATCH')
  })

  it('lets exactly one executor key win a race for one grant', async () => {
    const journal = await createReleaseJournal(freshDir())
    const keys = Array.from({ length: 8 }, key)
    const results = await Promise.allSettled(keys.map((k) => journal.begin(GRANT, k)))
    const won = results.filter((r) => r.status === 'fulfilled')
    expect(won).toHaveLength(1)
    for (const r of results)
      if (r.status === 'rejected') expect(r.reason.code).toBe('GRANT_KEY_MISMATCH')
    const winner = keys[results.findIndex((r) => r.status === 'fulfilled')]!
    expect((await journal.get(GRANT))?.executorKey).toEqual(winner)
  })

  it('serves each grant exactly once under any interleaving of begin/complete/restart (property)', async () => {
    const dir = freshDir()
    let journal = await createReleaseJournal(dir)
    const grants = ['g1', 'g2', 'g3']
    const bound = new Map<string, number>()
    const completed = new Set<string>()
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            op: fc.constantFrom('begin', 'complete', 'restart'),
            grant: fc.constantFrom(...grants),
            executor: fc.integer({ min: 1, max: 3 }),
          }),
          { maxLength: 15 },
        ),
        async (ops) => {
          for (const { op, grant, executor } of ops) {
            if (op === 'restart') {
              journal = await createReleaseJournal(dir)
            } else if (op === 'begin') {
              const outcome = await journal.begin(grant, new Uint8Array(32).fill(executor)).then(
                (r) => (r.resumed ? 'resumed' : 'started'),
                (e: { code: string }) => e.code,
              )
              const owner = bound.get(grant)
              if (owner === undefined) {
                expect(outcome).toBe('started')
                bound.set(grant, executor)
              } else if (owner !== executor) expect(outcome).toBe('GRANT_KEY_MISMATCH')
              else expect(outcome).toBe(completed.has(grant) ? 'ALREADY_RELEASED' : 'resumed')
            } else {
              const outcome = await journal.complete(grant).then(
                () => 'ok',
                (e: { code: string }) => e.code,
              )
              expect(outcome).toBe(bound.has(grant) ? 'ok' : 'RELEASE_NOT_BEGUN')
              if (bound.has(grant)) completed.add(grant)
            }
          }
        },
      ),
      { numRuns: 30 },
    )
  })

  it('rejects bad ids and executor keys with INVALID_ARGUMENT', async () => {
    const journal = await createReleaseJournal(freshDir())
    for (const id of ['../x', '', 'a b'])
      await expectCode(journal.begin(id, key()), 'INVALID_ARGUMENT')
    for (const k of [new Uint8Array(0), new Uint8Array(257), 'k' as unknown as Uint8Array]) {
      await expectCode(journal.begin(GRANT, k), 'INVALID_ARGUMENT')
    }
    await expectCode(journal.complete(GRANT), 'RELEASE_NOT_BEGUN')
  })

  it('refuses to serve a grant whose entry is corrupt', async () => {
    const dir = freshDir()
    const journal = await createReleaseJournal(dir)
    const k = key()
    await journal.begin(GRANT, k)
    const file = join(dir, `${GRANT}.json`)
    const good = JSON.parse(await readFile(file, 'utf8'))
    const cases: [unknown, string][] = [
      [{ ...good, state: 'sent' }, 'bad-field'],
      [{ ...good, executorKey: 'xyz' }, 'bad-field'],
      [{ ...good, version: 0 }, 'unknown-version'],
      [{ ...good, grantId: '0x00' }, 'id-mismatch'],
      [{ ...good, completedAt: good.begunAt }, 'bad-field'],
      [{ ...good, state: 'completed' }, 'bad-date'],
      [{ ...good, other: true }, 'unknown-field'],
    ]
    for (const [content, reason] of cases) {
      await writeFile(file, JSON.stringify(content))
      const err = await expectCode(journal.begin(GRANT, k), 'KEY_STORE_CORRUPT')
      expect(err.details.reason).toBe(reason)
    }
    await writeFile(file, '{"version":1,"gra')
    await expectCode(journal.begin(GRANT, k), 'KEY_STORE_CORRUPT')
    await expectCode(journal.complete(GRANT), 'KEY_STORE_CORRUPT')
    await expectCode(journal.pending(), 'KEY_STORE_CORRUPT')
  })

  it('keeps every acknowledged begin when the process is killed with SIGKILL', async () => {
    const dir = freshDir()
    const lines = await runAndKill(dir, 'journal', 60)
    const journal = await createReleaseJournal(dir)
    expect((await readdir(dir)).filter((f) => !f.endsWith('.json'))).toEqual([])
    const begun = lines.filter((l) => l.startsWith('begun ')).map((l) => l.slice(6))
    const completed = new Set(
      lines.filter((l) => l.startsWith('completed ')).map((l) => l.slice(10)),
    )
    expect(begun.length).toBeGreaterThan(0)
    for (const grantId of begun) {
      const entry = await journal.get(grantId)
      expect(entry, grantId).toBeDefined()
      if (completed.has(grantId)) expect(entry?.state).toBe('completed')
      const n = Number(grantId.slice(1))
      const own = new Uint8Array(32).fill(n % 256)
      const outcome = await journal.begin(grantId, own).then(
        (r) => (r.resumed ? 'resumed' : 'started'),
        (e: { code: string }) => e.code,
      )
      expect(outcome).toBe(entry?.state === 'completed' ? 'ALREADY_RELEASED' : 'resumed')
      await expectCode(
        journal.begin(grantId, new Uint8Array(32).fill(255 - (n % 256))),
        'GRANT_KEY_MISMATCH',
      )
    }
    // Every file in the directory parses: no torn entry.
    for (const name of await readdir(dir)) await journal.get(name.slice(0, -5))
  })
})
