/**
 * The plaintext file as the open left it (ADR 0055): its identity, size and times, taken with
 * `fstat` once every byte was written and hashed, and checked again right before the run is
 * measured. A file truncated, rewritten or replaced since then differs in one of them (the
 * kernel sets `ctime` on every change, and no call sets it back), so the digest the run
 * extends always describes the file the sandbox opens, without hashing it a second time.
 */
import type { FileHandle } from 'node:fs/promises'
import { lstat } from 'node:fs/promises'
import { PayloadIntegrityError } from '../errors.ts'
import type { JobInputFile, PlaintextFileStamp } from '../sandbox/types.ts'

/** The stamp of the open's output file, taken after its last write. */
export async function stampOf(fh: FileHandle): Promise<PlaintextFileStamp> {
  const s = await fh.stat({ bigint: true })
  return { dev: s.dev, ino: s.ino, size: s.size, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs }
}

/**
 * @throws PayloadIntegrityError when the file at `file.path` is not the one the open wrote, or
 *   changed since (nothing may be measured or run then).
 */
export async function checkPlaintextUnchanged(file: JobInputFile): Promise<void> {
  const want = file.stamp
  if (!want) return
  const now = await lstat(file.path, { bigint: true }).catch(() => undefined)
  const changed = !now
    ? 'missing'
    : now.dev !== want.dev || now.ino !== want.ino
      ? 'replaced'
      : now.size !== want.size
        ? 'resized'
        : now.mtimeNs !== want.mtimeNs || now.ctimeNs !== want.ctimeNs
          ? 'modified'
          : undefined
  if (changed) {
    throw new PayloadIntegrityError('The plaintext file changed after the open', {
      details: { reason: `plaintext-file-${changed}` },
      hint: 'Something wrote to the run’s private tmpfs directory; nothing was measured or run.',
    })
  }
}
