/**
 * File-to-file sealing and opening: the fast, constant-memory path for local files.
 *
 * Large payloads run on every core (`lanes.ts`: worker threads that each process whole
 * chunks in place). On one thread, reads go into two reused chunk buffers (the next read runs while the current chunk is
 * encrypted), and every cipher output is released as soon as it is written, so memory does
 * not grow with the file and does not wait for the garbage collector. Output is written to a
 * temporary file next to the target and renamed into place only on success, so a failure
 * never leaves a half-written capsule or unverified plaintext behind.
 */
export type { CommitAndSealFileParameters } from './commit-and-seal.ts'
export { commitAndSealFile } from './commit-and-seal.ts'
export { commitPlaintextFile } from './commit-file.ts'
export type { FilePieceDigest } from './hash-pieces.ts'
export { sha256FilePieces } from './hash-pieces.ts'
export { fileLimits } from './limits.ts'
export { openFile, openFileInto } from './open-file.ts'
export type { SealFileParameters } from './seal-file.ts'
export { sealFile } from './seal-file.ts'
export type { FileThreadsOption, WarmFileLanesOptions } from './threads.ts'
export { MAX_FILE_THREADS, PARALLEL_FILE_MIN_BYTES } from './threads.ts'
export { warmFileLanes } from './warm.ts'
