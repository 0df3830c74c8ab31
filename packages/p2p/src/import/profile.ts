/**
 * How capsule bytes become a CID (capsule-core SPEC §9): the IPIP-499 `unixfs-v1-2025`
 * profile for a single file. CIDv1, sha2-256, 1 MiB fixed-size chunks as raw leaves, a
 * balanced DAG of at most 1024 links per dag-pb node, a one-chunk file is its raw leaf.
 * Written out here instead of taken from the library's defaults, which change between
 * versions and would change every CID with them. `ipfs-car pack --no-wrap` and kubo's
 * `ipfs add --cid-version=1 --raw-leaves --chunker=size-1048576 --max-file-links=1024`
 * give the same CID (test/cid-interop.test.ts).
 */
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { UNIXFS_CHUNK_SIZE, UNIXFS_MAX_LINKS } from './sizes.ts'

export { UNIXFS_CHUNK_SIZE, UNIXFS_MAX_LINKS }

/** The importer options of the profile (for `ipfs-unixfs-importer` and `@helia/unixfs`). */
export function capsuleImportOptions() {
  return {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: UNIXFS_CHUNK_SIZE }),
    layout: balanced({ maxChildrenPerNode: UNIXFS_MAX_LINKS }),
  } as const
}
