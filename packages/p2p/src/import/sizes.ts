/**
 * The sizes of the capsule UnixFS profile (see profile.ts), apart from the importer's chunker
 * and layout so that a reader (the fetch) does not load the importer.
 */

/** Chunk size of the UnixFS import: 1 MiB. */
export const UNIXFS_CHUNK_SIZE = 1_048_576
/** Most links in one UnixFS file node of the balanced DAG. */
export const UNIXFS_MAX_LINKS = 1024
