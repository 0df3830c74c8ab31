/**
 * `@digicap/p2p/import`: the capsule import alone (bytes → UnixFS blocks → CID), for
 * processes that add blocks without running a node. Loads neither helia nor libp2p.
 */
export { CapsuleStoreError } from './errors.ts'
export type { FileReference } from './filestore/file-reference.ts'
export { FilestoreBlockstore } from './filestore/filestore-blockstore.ts'
export type { BufferPool } from './import/buffer-pool.ts'
export { createBufferPool } from './import/buffer-pool.ts'
export type { CapsuleSource } from './import/chunks.ts'
export type { FsCapsuleImporter, FsCapsuleImporterOptions } from './import/fs-capsule-importer.ts'
export {
  blocksFolder,
  filestoreFolder,
  openDataDirBlockstore,
  openFsCapsuleImporter,
} from './import/fs-capsule-importer.ts'
export type { CapsuleBlockSink, ImportCapsuleOptions } from './import/import-capsule.ts'
export { IMPORT_WRITE_CONCURRENCY, importCapsule } from './import/import-capsule.ts'
export { capsuleImportOptions, UNIXFS_CHUNK_SIZE, UNIXFS_MAX_LINKS } from './import/profile.ts'
