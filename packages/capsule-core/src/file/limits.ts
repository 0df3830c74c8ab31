/**
 * Memory bounds of the file helpers, apart from any one of them (the seal and the piece
 * hasher both read them). Internal (not exported by the package); tests lower
 * them to reach the fallbacks with small files.
 */
export const fileLimits = {
  /**
   * Above this many bytes of chunk tags held in memory (16 per chunk: 4 MiB is 256 GiB of
   * payload at the default 1 MiB chunk), `commitAndSealFile` reads the input twice.
   */
  maxHeldTagBytes: 4 * 1024 * 1024,
  /**
   * Pieces `sha256FilePieces` hashes per run of the lanes (8 GiB of 1 MiB pieces: one
   * set of worker threads for a capsule up to that size; each new set costs start-up and
   * memory). At most two segments of digests (~100 bytes each) are held.
   */
  hashSegmentPieces: 8192,
}
