/**
 * The deliverer's pending results in a folder, one file per receiver's copy: the signed delivery
 * (its wire encoding, `resultCid` in place of the sealed bytes) and the peer to send it to. A
 * result is reported `stored` only once its file is written, so a restart or a kill -9 after that
 * loses nothing: the next process (`executor-node serve`, or a one-shot `run` on the folder)
 * loads the files and sends each delivery when its receiver connects.
 *
 * One file per copy, written atomically (temp file, rename) and removed once the receiver
 * acknowledged or refused for good: processes that share the folder never rewrite each other's
 * records, and a crash leaves a whole file or none. Bounded: past `maxRecords` files a copy is
 * kept in memory only (its result is on IPFS either way). A file that does not read as a record
 * this version wrote is skipped and reported, never sent.
 */
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { toHex } from '@digicap/capsule-core'
import { decodeResultDelivery, encodeResultDelivery, type ResultDelivery } from '@digicap/protocol'

/** One pending copy: the signed delivery (with `resultCid`) and its receiver's peer id. */
export interface PendingRecord {
  readonly peer: string
  readonly message: ResultDelivery
  /** When the copy was stored (ms since the epoch), as its file says. */
  readonly since?: number | undefined
}

/** Where a deliverer keeps its pending copies across restarts. */
export interface PendingDeliveryStore {
  /** Every record kept, oldest first; `skipped` names the files that did not read as one. */
  load(): Promise<{ records: PendingRecord[]; skipped: string[] }>
  /** Keeps `record`; false when the store is full (the copy then lives in memory only). */
  put(record: PendingRecord): Promise<boolean>
  /** Forgets the record of `message` (delivered, or refused for good). */
  remove(message: ResultDelivery): Promise<void>
}

/** Options of {@link filePendingDeliveries}. */
export interface FilePendingDeliveriesInit {
  /** The folder (created on the first record). */
  readonly dir: string
  /** Records kept at most. Default 4 096. */
  readonly maxRecords?: number
}

/** Components of {@link filePendingDeliveries}. */
export interface FilePendingDeliveriesComponents {
  /** Writes `value` as JSON to `path` atomically (temp file, fsync, rename, fsync the folder). */
  writeJsonAtomic(path: string, value: unknown): Promise<void>
}

const VERSION = 1
const NAME = /^[0-9a-f]{64}-[0-9a-f]{64}\.json$/

/** The file of one copy: its run id and receiver key (a run delivers once per receiver). */
const fileOf = (m: ResultDelivery): string =>
  `${toHex(m.runId).slice(2)}-${toHex(m.receiverKey).slice(2)}.json`

/**
 * @example
 * ```ts
 * import { writeJsonAtomic } from '@digicap/cli-kit'
 * const pending = filePendingDeliveries({ dir: join(dataDir, 'pending-results') })({ writeJsonAtomic })
 * const deliverer = createResultDeliverer()({ libp2p, store, domain, signer, pending })
 * await deliverer.restore()
 * ```
 */
export function filePendingDeliveries(
  init: FilePendingDeliveriesInit,
): (components: FilePendingDeliveriesComponents) => PendingDeliveryStore {
  const maxRecords = init.maxRecords ?? 4096
  return ({ writeJsonAtomic }) => {
    const names = async (): Promise<string[]> => {
      try {
        return (await readdir(init.dir)).filter((n) => NAME.test(n))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
        throw err
      }
    }
    return {
      async load() {
        const records: { at: number; record: PendingRecord }[] = []
        const skipped: string[] = []
        for (const name of await names()) {
          try {
            const doc = JSON.parse(await readFile(join(init.dir, name), 'utf8')) as {
              version?: unknown
              peer?: unknown
              delivery?: unknown
              at?: unknown
            }
            if (doc.version !== VERSION || typeof doc.peer !== 'string') throw new Error('format')
            if (typeof doc.delivery !== 'string' || !/^[0-9a-f]+$/.test(doc.delivery))
              throw new Error('format')
            const message = decodeResultDelivery(Uint8Array.from(Buffer.from(doc.delivery, 'hex')))
            // only a stored copy (a CID, no inline bytes) under its own name
            if (message.resultCid === undefined || fileOf(message) !== name)
              throw new Error('format')
            const at = typeof doc.at === 'number' ? doc.at : 0
            records.push({ at, record: { peer: doc.peer, message, since: at } })
          } catch {
            skipped.push(name)
          }
        }
        records.sort((a, b) => a.at - b.at)
        return { records: records.map((r) => r.record), skipped }
      },
      async put(record) {
        if ((await names()).length >= maxRecords) return false
        await writeJsonAtomic(join(init.dir, fileOf(record.message)), {
          version: VERSION,
          peer: record.peer,
          at: Date.now(),
          delivery: Buffer.from(encodeResultDelivery(record.message)).toString('hex'),
        })
        return true
      },
      async remove(message) {
        await rm(join(init.dir, fileOf(message)), { force: true })
      },
    }
  }
}
