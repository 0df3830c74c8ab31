/**
 * libp2p's peer records (addresses, protocols of the peers met) live in memory while the node
 * runs, because libp2p writes a peer's record on every protocol stream before its handler runs and
 * an on-disk write there lost block messages (ADR 0050). They are loaded from the data folder at
 * start and written back every `PEER_RECORDS_SAVE_MS` and at stop, in the background, so a
 * restarted node still knows how to reach the peers it met (a keyguard re-serves a journaled
 * release to an executor that does not dial back).
 */
import type { MemoryDatastore } from 'datastore-core'
import type { FolderDatastore } from './datastore/folder-datastore.ts'

/** libp2p's peer store keys (`@libp2p/peer-store`'s namespace). */
const PEERS_PREFIX = '/peers/'
/** How often the records in memory are written to the data folder (a crash loses at most this). */
export const PEER_RECORDS_SAVE_MS = 30_000

type Store = Pick<MemoryDatastore | FolderDatastore, 'query' | 'put'>

async function copyPeerRecords(from: Store, into: Store): Promise<void> {
  for await (const { key, value } of from.query({ prefix: PEERS_PREFIX }))
    await into.put(key, value)
}

/** Keeps `memory`'s peer records in step with `disk`: loaded now, saved on a timer and at `stop`. */
export async function persistPeerRecords(
  memory: Store,
  disk: Store,
): Promise<{ stop(): Promise<void> }> {
  await copyPeerRecords(disk, memory).catch(() => {})
  let saving: Promise<void> = Promise.resolve()
  const save = () => {
    saving = saving.then(() => copyPeerRecords(memory, disk)).catch(() => {})
    return saving
  }
  const timer = setInterval(save, PEER_RECORDS_SAVE_MS)
  timer.unref()
  return {
    async stop() {
      clearInterval(timer)
      await save()
    },
  }
}
