/**
 * Adding a capsule to a node's on-disk blockstore without starting the node: what a
 * short-lived `pi-node seal` needs while the long-running `serve` owns the node (and serves
 * the blocks). Loads neither helia nor libp2p.
 */
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { CapsuleStoreError } from '../errors.ts'
import type { CapsuleSource } from './chunks.ts'
import { type ImportCapsuleOptions, importCapsule } from './import-capsule.ts'

/** The blockstore's folder under a node's data folder (as `createDigicapNode` opens it). */
export function blocksFolder(dataDir: string): string {
  return join(dataDir, 'blocks')
}

export interface FsCapsuleImporter {
  /** Stores the bytes as UnixFS blocks and returns their CID (string form). */
  put(source: CapsuleSource, options?: ImportCapsuleOptions): Promise<string>
  close(): Promise<void>
}

/**
 * Opens the blockstore under `dataDir` (creating it if missing) for imports.
 * @throws {CapsuleStoreError} if the folder cannot be created or written.
 * @example
 * ```ts
 * const blocks = await openFsCapsuleImporter(paths.ipfs)
 * const cid = await blocks.put({ path: 'capsule.bin' })
 * await blocks.close()
 * ```
 */
export async function openFsCapsuleImporter(dataDir: string): Promise<FsCapsuleImporter> {
  const blockstore = new FsBlockstore(blocksFolder(dataDir))
  await blockstore.open().catch((cause) => {
    throw new CapsuleStoreError('Cannot open the blockstore', {
      cause,
      details: { dataDir },
      hint: 'Check that the data folder exists and is writable by this user.',
    })
  })
  return {
    async put(source, options) {
      return (await importCapsule(source, blockstore, options)).toString()
    },
    close: () => blockstore.close(),
  }
}
