/**
 * The keyguard's release journal read for the status page: one `<grantId>.json` per grant
 * (`@digicap/keyguard`'s ReleaseJournal format), parsed read-only and leniently here — the
 * daemon's keyguard owns the folder; opening a second ReleaseJournal on it would sweep its temps.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

export interface JournalRow {
  grantId: string
  capsuleId?: string
  state: 'begun' | 'completed' | 'refused'
  begunAt: string
  completedAt?: string
  refusedAt?: string
  reason?: string
  via?: string
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)

/** Every readable entry, newest first (by the time it was begun). */
export async function readJournal(dir: string): Promise<JournalRow[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return []
  }
  const rows: JournalRow[] = []
  for (const name of names) {
    if (!name.endsWith('.json') || name.startsWith('.')) continue
    try {
      const o = JSON.parse(await readFile(join(dir, name), 'utf8')) as Record<string, unknown>
      const state = o.state
      if (state !== 'begun' && state !== 'completed' && state !== 'refused') continue
      const grantId = text(o.grantId)
      if (grantId === undefined) continue
      const row: JournalRow = { grantId, state, begunAt: text(o.begunAt) ?? '' }
      for (const k of ['capsuleId', 'completedAt', 'refusedAt', 'reason', 'via'] as const) {
        const v = text(o[k])
        if (v !== undefined) row[k] = v
      }
      rows.push(row)
    } catch {
      // A half-written or foreign file: not shown (the keyguard reports its own corruption).
    }
  }
  return rows.sort((a, b) => b.begunAt.localeCompare(a.begunAt))
}
