/**
 * The rootfs directory the capsule's mounts go under, made before runc runs. runc creates a
 * missing mount point with the caller's umask, and the daemons run under umask 077 (ADR 0029):
 * `/digicap` came out 0700 root, and the container's user could not reach its input. The image
 * may ship `/digicap` itself: a real directory is opened up (0755); anything else (a symlink
 * could point out of the rootfs when followed here) is refused.
 */
import { chmod, lstat, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { OciFormatError } from '@digicap/oci'

/** Makes `<rootfs>/digicap` a 0755 directory. */
export async function prepareMountPoints(rootfs: string): Promise<void> {
  const dir = join(rootfs, 'digicap')
  const st = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined
    throw err
  })
  if (st && !st.isDirectory()) {
    throw new OciFormatError('The image has a /digicap that is not a directory', {
      details: { path: '/digicap', type: st.isSymbolicLink() ? 'symlink' : 'other' },
      hint: '/digicap is where the run mounts its input and output; leave it out of the image.',
    })
  }
  if (!st) await mkdir(dir)
  await chmod(dir, 0o755)
}
