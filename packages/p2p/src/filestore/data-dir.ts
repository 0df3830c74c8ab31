/**
 * Where a node's data folder keeps its blocks, and that blockstore opened: shared by the node
 * (node.ts) and the import (fs-capsule-importer.ts), apart from the importer so that a node
 * that only fetches does not load it.
 */
import { join } from 'node:path'
import { FilestoreBlockstore } from './filestore-blockstore.ts'
/** The blockstore's folder under a node's data folder (as `createDigicapNode` opens it). */
export function blocksFolder(dataDir: string): string {
  return join(dataDir, 'blocks')
}

/** The folder of the blocks kept as references to local files, under a node's data folder. */
export function filestoreFolder(dataDir: string): string {
  return join(dataDir, 'filestore')
}

/** The on-disk blockstore of a node's data folder (copies and file references), opened. */
export async function openDataDirBlockstore(dataDir: string): Promise<FilestoreBlockstore> {
  const blockstore = new FilestoreBlockstore(blocksFolder(dataDir), filestoreFolder(dataDir))
  await blockstore.open()
  return blockstore
}
