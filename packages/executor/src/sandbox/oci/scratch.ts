/**
 * A run's private scratch space: a tmpfs mounted on a fresh workspace directory, so decrypted
 * layers and the unpacked rootfs never reach a disk. Where mounting is not permitted (no
 * CAP_SYS_ADMIN), a private 0700 directory of the workspace, whose files the workspace
 * overwrites with zeros on clean-up; `tmpfs` says which one the run got.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { RunWorkspace } from '../../run/workspace.ts'

const execFileAsync = promisify(execFile)

export interface Scratch {
  readonly dir: string
  readonly tmpfs: boolean
  /** Unmounts the tmpfs (its pages are freed with it). Idempotent. */
  release(): Promise<void>
}

export async function createScratch(
  ws: RunWorkspace,
  init: { sizeBytes: number; tmpfs?: boolean | undefined },
): Promise<Scratch> {
  const dir = await ws.tempDir('oci-')
  let mounted = false
  if (init.tmpfs !== false) {
    try {
      await execFileAsync(
        'mount',
        ['-t', 'tmpfs', '-o', `size=${init.sizeBytes},mode=0700,nosuid,nodev`, 'tmpfs', dir],
        { timeout: 15_000 },
      )
      mounted = true
    } catch {
      // not permitted here: the workspace directory it is, wiped file by file
    }
  }
  let released = !mounted
  const release = async () => {
    if (released) return
    released = true
    await execFileAsync('umount', [dir], { timeout: 15_000 }).catch(() =>
      execFileAsync('umount', ['-l', dir], { timeout: 15_000 }),
    )
  }
  ws.trackHandle(release)
  return { dir, tmpfs: mounted, release }
}
