/**
 * The release journal: one file per grant (`<dir>/<grantId>.json`), so that a grant is
 * served exactly once per executor key, across crashes and restarts.
 *
 * Protocol: call `begin(grantId, executorKey)` BEFORE unwrapping; send the key; call
 * `complete(grantId)` when the executor acknowledged. `begin` creates the entry with an
 * atomic exclusive link (durable before it returns), so:
 * - a second `begin` with a different executor key is refused ({@link GrantKeyMismatchError});
 * - a `begin` after `complete` is refused ({@link AlreadyReleasedError});
 * - a `begin` with the same key after a crash between send and ack returns `resumed: true`
 *   and the key is sent again (at-least-once send + idempotent ack = exactly-once delivery
 *   to one key).
 *
 * The fast path answers with the key inline, so it records its grant with `served()` (an entry
 * created already completed, `via: "fast-path"`) before the key leaves; the `AccessGranted` log
 * of its audit transaction then finds the grant served and nothing is sent again.
 *
 * A begun grant the keyguard will not serve after all (the executor's attestation was refused)
 * is closed with `refuse(grantId, reason)`: it is neither re-served after a restart nor begun
 * again when its log is seen twice.
 *
 * File format, version 1:
 * `{ "version": 1, "grantId": "…", "executorKey": "<hex>", "state": "begun" | "completed" |
 *    "refused", "begunAt": "…Z", "completedAt"?: "…Z", "refusedAt"?: "…Z", "reason"?: "…",
 *    "capsuleId"?: "…", "via"?: "fast-path" }` (`refusedAt` and `reason` exactly when refused)
 */

import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidArgumentError } from '@digicap/capsule-core'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import {
  AlreadyReleasedError,
  GrantKeyMismatchError,
  GrantRefusedError,
  ReleaseNotBegunError,
} from '../errors.ts'
import { ensureDir, removeStaleTemps, writeFileAtomic } from '../store/fs-atomic.ts'
import { canonicalId } from '../store/ids.ts'
import { checkDate, checkKeys, corrupt, type JsonObject, readJsonFile } from '../store/json-file.ts'

/** Longest executor key the journal accepts (an X25519 key is 32 bytes). */
export const MAX_EXECUTOR_KEY_BYTES = 256
/** Longest refusal reason a journal entry holds. */
const MAX_REASON_CHARS = 256

export interface ReleaseEntry {
  grantId: string
  executorKey: Uint8Array
  state: 'begun' | 'completed' | 'refused'
  begunAt: string
  completedAt?: string
  /** When `refuse` closed it (state `refused`). */
  refusedAt?: string
  /** Why it was refused (state `refused`), e.g. `not-attested evidence:QUOTE_RUN_PCR`. */
  reason?: string
  capsuleId?: string
  /** `fast-path`: the key went out inline in the fast-path answer (no key-release push). */
  via?: 'fast-path'
}

export interface BeginResult {
  entry: ReleaseEntry
  /** `true` if the grant was begun before (a crash or a lost ack) with the same key. */
  resumed: boolean
}

export interface ReleaseJournal {
  readonly dir: string
  /**
   * Records the intent to release a grant's key to `executorKey`, durably, before any unwrap.
   * @throws {GrantKeyMismatchError} if the grant was begun for another key.
   * @throws {AlreadyReleasedError} if the grant was completed.
   * @throws {GrantRefusedError} (`details.reason` `refused`) if the grant was refused.
   * @throws {KeyStoreCorruptError} if the grant's entry is corrupt (nothing is served).
   */
  begin(
    grantId: string,
    executorKey: Uint8Array,
    info?: { capsuleId?: string },
  ): Promise<BeginResult>
  /**
   * Marks a grant served. Idempotent.
   * @throws {ReleaseNotBegunError} if the grant was never begun.
   */
  complete(grantId: string): Promise<ReleaseEntry>
  /**
   * Closes a begun grant without serving it, durably: never re-served, never begun again.
   * Idempotent for a refused grant; a completed one stays completed (returned as is).
   * `reason` is at most 256 characters.
   * @throws {ReleaseNotBegunError} if the grant was never begun.
   */
  refuse(grantId: string, reason: string): Promise<ReleaseEntry>
  /**
   * Records a grant whose key is sent inline by the fast path: the entry is created already
   * completed (`via: 'fast-path'`), durably, before the key leaves. Call it once per grant.
   * @throws {AlreadyReleasedError} if the grant has an entry already (nothing may be sent).
   */
  served(
    grantId: string,
    executorKey: Uint8Array,
    info?: { capsuleId?: string },
  ): Promise<ReleaseEntry>
  get(grantId: string): Promise<ReleaseEntry | undefined>
  /**
   * Entries begun but not completed (to re-serve after a restart), sorted by grant id. Reads
   * only the begun entries' files (an index kept in memory since open), not the whole folder.
   * @throws {KeyStoreCorruptError} if a begun entry (or a file that did not parse at open) is corrupt.
   */
  pending(): Promise<ReleaseEntry[]>
}

function parseEntry(file: string, expectedId: string, obj: JsonObject): ReleaseEntry {
  checkKeys(
    file,
    obj,
    ['version', 'grantId', 'executorKey', 'state', 'begunAt'],
    ['completedAt', 'refusedAt', 'reason', 'capsuleId', 'via'],
  )
  if (obj.version !== 1) corrupt(file, 'unknown-version', { version: obj.version })
  if (obj.grantId !== expectedId) corrupt(file, 'id-mismatch')
  const hex = obj.executorKey
  if (typeof hex !== 'string' || !/^([0-9a-f]{2}){1,256}$/.test(hex)) {
    corrupt(file, 'bad-field', { field: 'executorKey' })
  }
  if (obj.state !== 'begun' && obj.state !== 'completed' && obj.state !== 'refused')
    corrupt(file, 'bad-field', { field: 'state' })
  const entry: ReleaseEntry = {
    grantId: expectedId,
    executorKey: hexToBytes(hex),
    state: obj.state,
    begunAt: checkDate(file, 'begunAt', obj.begunAt),
  }
  if (obj.state === 'completed') {
    entry.completedAt = checkDate(file, 'completedAt', obj.completedAt)
  } else if ('completedAt' in obj) {
    corrupt(file, 'bad-field', { field: 'completedAt' })
  }
  if (obj.state === 'refused') {
    entry.refusedAt = checkDate(file, 'refusedAt', obj.refusedAt)
    if (typeof obj.reason !== 'string' || obj.reason.length > MAX_REASON_CHARS) {
      corrupt(file, 'bad-field', { field: 'reason' })
    }
    entry.reason = obj.reason
  } else if ('refusedAt' in obj || 'reason' in obj) {
    corrupt(file, 'bad-field', { field: 'refusedAt' in obj ? 'refusedAt' : 'reason' })
  }
  if ('via' in obj) {
    if (obj.via !== 'fast-path' || obj.state !== 'completed') {
      corrupt(file, 'bad-field', { field: 'via' })
    }
    entry.via = 'fast-path'
  }
  if ('capsuleId' in obj) {
    try {
      entry.capsuleId = canonicalId('capsuleId', obj.capsuleId)
    } catch {
      corrupt(file, 'bad-field', { field: 'capsuleId' })
    }
  }
  return entry
}

function serialize(entry: ReleaseEntry): Uint8Array {
  return new TextEncoder().encode(
    `${JSON.stringify({
      version: 1,
      grantId: entry.grantId,
      executorKey: bytesToHex(entry.executorKey),
      state: entry.state,
      begunAt: entry.begunAt,
      ...(entry.completedAt === undefined ? {} : { completedAt: entry.completedAt }),
      ...(entry.refusedAt === undefined ? {} : { refusedAt: entry.refusedAt }),
      ...(entry.reason === undefined ? {} : { reason: entry.reason }),
      ...(entry.capsuleId === undefined ? {} : { capsuleId: entry.capsuleId }),
      ...(entry.via === undefined ? {} : { via: entry.via }),
    })}\n`,
  )
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i])
}

/**
 * Opens (creating if needed) a release journal in `dir`. Open one journal per directory per
 * process; `begin` is safe against concurrent callers (the exclusive link decides).
 *
 * @example
 * ```ts
 * const journal = await createReleaseJournal('/var/lib/digicap/journal')
 * const { resumed } = await journal.begin(grantId, executorKey)
 * await send(await hpkeSeal(executorKey, await sealer.unwrap(wrapped), grantIdBytes))
 * await journal.complete(grantId)
 * ```
 */
export async function createReleaseJournal(dir: string): Promise<ReleaseJournal> {
  await ensureDir(dir)
  await removeStaleTemps(dir)
  const pathOf = (id: string) => join(dir, `${id}.json`)

  async function get(grantId: string): Promise<ReleaseEntry | undefined> {
    const id = canonicalId('grantId', grantId)
    const file = pathOf(id)
    const obj = await readJsonFile(file)
    return obj === undefined ? undefined : parseEntry(file, id, obj)
  }

  function newEntry(
    grantId: string,
    executorKey: Uint8Array,
    info: { capsuleId?: string },
  ): ReleaseEntry {
    if (
      !(executorKey instanceof Uint8Array) ||
      executorKey.length === 0 ||
      executorKey.length > MAX_EXECUTOR_KEY_BYTES
    ) {
      throw new InvalidArgumentError('executorKey must be 1–256 bytes', {
        details: { length: executorKey?.length },
      })
    }
    return {
      grantId: canonicalId('grantId', grantId),
      executorKey: Uint8Array.from(executorKey),
      state: 'begun',
      begunAt: new Date().toISOString(),
      ...(info.capsuleId === undefined
        ? {}
        : { capsuleId: canonicalId('capsuleId', info.capsuleId) }),
    }
  }

  // The index of open entries: ids of the entries begun and not yet closed, plus every file
  // that did not parse at open (so `pending()` still refuses a corrupt journal, as it did when
  // it read every file). Loaded once here; `begin` adds, `complete` and `refuse` remove, after
  // their durable write. The files stay the truth: `pending()` reads each indexed entry again.
  const open = new Set<string>()
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.json') || name.startsWith('.')) continue
    const id = name.slice(0, -'.json'.length)
    try {
      if ((await get(id))?.state === 'begun') open.add(id)
    } catch {
      open.add(id)
    }
  }

  return {
    dir,
    get,

    async served(grantId, executorKey, info = {}) {
      const begun = newEntry(grantId, executorKey, info)
      const entry: ReleaseEntry = {
        ...begun,
        state: 'completed',
        completedAt: begun.begunAt,
        via: 'fast-path',
      }
      try {
        await writeFileAtomic(pathOf(entry.grantId), serialize(entry), { exclusive: true })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        throw new AlreadyReleasedError('The grant already has a release entry', {
          details: { grantId: entry.grantId },
        })
      }
      return entry
    },

    async begin(grantId, executorKey, info = {}) {
      const entry = newEntry(grantId, executorKey, info)
      const id = entry.grantId
      try {
        await writeFileAtomic(pathOf(id), serialize(entry), { exclusive: true })
        open.add(id)
        return { entry, resumed: false }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const existing = await get(id)
      if (existing === undefined) {
        // Only `delete` by hand could cause this; refuse rather than guess.
        throw new AlreadyReleasedError('The grant entry vanished while beginning', {
          details: { grantId: id },
        })
      }
      if (!sameBytes(existing.executorKey, executorKey)) {
        throw new GrantKeyMismatchError('The grant is bound to another executor key', {
          details: { grantId: id },
          hint: 'A grant is served to the ephemeral key it was first requested with, only.',
        })
      }
      if (existing.state === 'completed') {
        throw new AlreadyReleasedError('The grant was already served', {
          details: { grantId: id, completedAt: existing.completedAt },
        })
      }
      if (existing.state === 'refused') {
        throw new GrantRefusedError('The grant was refused', {
          details: { grantId: id, reason: 'refused', refusal: existing.reason },
        })
      }
      open.add(id)
      return { entry: existing, resumed: true }
    },

    async complete(grantId) {
      const id = canonicalId('grantId', grantId)
      const existing = await get(id)
      if (existing === undefined) {
        throw new ReleaseNotBegunError('complete() for a grant that was never begun', {
          details: { grantId: id },
        })
      }
      if (existing.state !== 'begun') {
        open.delete(id)
        return existing
      }
      const done: ReleaseEntry = {
        ...existing,
        state: 'completed',
        completedAt: new Date().toISOString(),
      }
      await writeFileAtomic(pathOf(id), serialize(done))
      open.delete(id)
      return done
    },

    async refuse(grantId, reason) {
      const id = canonicalId('grantId', grantId)
      if (typeof reason !== 'string' || reason.length > MAX_REASON_CHARS) {
        throw new InvalidArgumentError('reason must be a string of at most 256 characters', {
          details: { length: (reason as string | undefined)?.length },
        })
      }
      const existing = await get(id)
      if (existing === undefined) {
        throw new ReleaseNotBegunError('refuse() for a grant that was never begun', {
          details: { grantId: id },
        })
      }
      if (existing.state !== 'begun') {
        open.delete(id)
        return existing
      }
      const refused: ReleaseEntry = {
        ...existing,
        state: 'refused',
        refusedAt: new Date().toISOString(),
        reason,
      }
      await writeFileAtomic(pathOf(id), serialize(refused))
      open.delete(id)
      return refused
    },

    async pending() {
      const out: ReleaseEntry[] = []
      for (const id of [...open].sort()) {
        const entry = await get(id)
        if (entry?.state === 'begun') out.push(entry)
        else open.delete(id)
      }
      return out
    },
  }
}
