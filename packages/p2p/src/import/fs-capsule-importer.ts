/**
 * Adding a capsule to a node's on-disk blockstore without starting the node: what a
 * short-lived `pi-node seal` needs while the long-running `serve` owns the node (and serves
 * the blocks). Loads neither helia nor libp2p.
 */
import { CapsuleStoreError } from '../errors.ts'
import { openDataDirBlockstore } from '../filestore/data-dir.ts'
import type { CapsuleSource } from './chunks.ts'
import { type ImportCapsuleOptions, importCapsule } from './import-capsule.ts'

export { blocksFolder, filestoreFolder, openDataDirBlockstore } from '../filestore/data-dir.ts'

export interface FsCapsuleImporter {
  /** Stores the bytes as UnixFS blocks and returns their CID (string form). */
  put(source: CapsuleSource, options?: ImportCapsuleOptions): Promise<string>
  close(): Promise<void>
}

export interface FsCapsuleImporterOptions {
  /**
   * Keep the leaves of `{ path }` sources as references to the file's bytes instead of copies
   * (Kubo's `--nocopy`): for a caller that keeps the file where it is, as `pi-node seal` keeps
   * `capsule.bin` in the capsule's folder. Streams and byte arrays are always copied.
   * Default `false`.
   */
  referenceFiles?: boolean
}

/**
 * Opens the blockstore under `dataDir` (creating it if missing) for imports.
 * @throws {CapsuleStoreError} if the folder cannot be created or written.
 * @example
 * ```ts
 * const blocks = await openFsCapsuleImporter(paths.ipfs, { referenceFiles: true })
 * const cid = await blocks.put({ path: 'capsule.bin' })
 * await blocks.close()
 * ```
 */
export async function openFsCapsuleImporter(
  dataDir: string,
  init: FsCapsuleImporterOptions = {},
): Promise<FsCapsuleImporter> {
  const blockstore = await openDataDirBlockstore(dataDir).catch((cause) => {
    throw new CapsuleStoreError('Cannot open the blockstore', {
      cause,
      details: { dataDir },
      hint: 'Check that the data folder exists and is writable by this user.',
    })
  })
  return {
    async put(source, options) {
      const referenceFile =
        init.referenceFiles === true && typeof source === 'object' && 'path' in source
      return (
        await importCapsule(source, blockstore, {
          ...options,
          ...(referenceFile ? { referenceFile } : {}),
        })
      ).toString()
    },
    close: () => blockstore.close(),
  }
}
