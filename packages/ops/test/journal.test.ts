/**
 * The status page's history reads the keyguard's release journal read-only: entries newest
 * first, optional fields kept only when they are strings, and a half-written, foreign or
 * hidden file skipped instead of failing the page.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { readJournal } from '../src/index.ts'

const dirs: string[] = []
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))))

it('reads entries newest first and skips what is not a journal entry', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ops-journal-'))
  dirs.push(dir)
  const put = (name: string, v: unknown) =>
    writeFile(join(dir, name), typeof v === 'string' ? v : JSON.stringify(v))
  await put('a.json', {
    grantId: 'a',
    state: 'completed',
    begunAt: '2026-01-01T00:00:00Z',
    completedAt: '2026-01-01T00:00:01Z',
    capsuleId: 'c1',
    via: 'fast-path',
  })
  await put('b.json', {
    grantId: 'b',
    state: 'refused',
    begunAt: '2026-01-02T00:00:00Z',
    reason: 'expired',
    capsuleId: 7,
  })
  await put('c.json', { grantId: 'c', state: 'begun', begunAt: '2025-12-31T00:00:00Z' })
  await put('torn.json', '{"grantId": "t", "sta')
  await put('odd.json', { grantId: 'o', state: 'exploded', begunAt: '2026-01-03T00:00:00Z' })
  await put('nogrant.json', { state: 'begun', begunAt: '2026-01-03T00:00:00Z' })
  await put('.tmp.json', { grantId: 'h', state: 'begun', begunAt: '2026-01-04T00:00:00Z' })
  await put('notes.txt', 'not json')
  expect(await readJournal(dir)).toEqual([
    { grantId: 'b', state: 'refused', begunAt: '2026-01-02T00:00:00Z', reason: 'expired' },
    {
      grantId: 'a',
      state: 'completed',
      begunAt: '2026-01-01T00:00:00Z',
      completedAt: '2026-01-01T00:00:01Z',
      capsuleId: 'c1',
      via: 'fast-path',
    },
    { grantId: 'c', state: 'begun', begunAt: '2025-12-31T00:00:00Z' },
  ])
})

it('a missing journal folder reads as no history', async () => {
  expect(await readJournal(join(tmpdir(), 'ops-journal-missing-', String(process.pid)))).toEqual([])
})
