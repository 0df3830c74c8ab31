/**
 * A run's private scratch space: a tmpfs mounted on a fresh run directory of the executor's
 * OCI state directory (`run-dir.ts`), so decrypted layers and the unpacked rootfs never reach
 * a disk and a crashed run is found by the next start's sweep. Where mounting is not permitted
 * (no CAP_SYS_ADMIN), a private 0700 directory of the workspace under the same state directory
 * and name, whose files the workspace overwrites with zeros on clean-up, whatever their size;
 * `tmpfs` says which one the run got. Both are fresh names made under the checked state
 * directory and checked again (lstat: a real 0700-or-stricter directory of this uid) before
 * anything is written in them (ADR 0075).
 */
import { execFile } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { promisify } from 'node:util'
import type { RunWorkspace } from '../../run/workspace.ts'
import { checkOwnedDir, ensureOciStateDir, makeRunDir, runDirPrefix } from './run-dir.ts'

const execFileAsync = promisify(execFile)

export interface Scratch {
  readonly dir: string
  readonly tmpfs: boolean
  /** Unmounts the tmpfs (its pages are freed with it) and removes its directory. Idempotent. */
  release(): Promise<void>
}

/** @throws {OciStateDirError} when the state directory or the run directory is not this uid's alone */
export async function createScratch(
  ws: RunWorkspace,
  init: { stateDir: string; sizeBytes: number; tmpfs?: boolean | undefined },
): Promise<Scratch> {
  // made (non-recursively) and checked: a real directory of this uid in folders only it or
  // root may change; the path from here on has no link in it
  const stateDir = (await ensureOciStateDir(init.stateDir)) as string
  // Every file is overwritten, whatever the workspace's size cap: the decrypted layers and the
  // rootfs can be larger than it, and their size is bounded by the image (and the unpack's
  // time limit), the output's by the container's file-size limit, not by the program.
  const plainDir = async (): Promise<Scratch> => {
    const dir = await ws.tempDir(await runDirPrefix(), stateDir, { overwriteAll: true })
    await checkOwnedDir(dir)
    return { dir, tmpfs: false, release: async () => {} }
  }
  if (init.tmpfs !== false) {
    const dir = await makeRunDir(stateDir)
    try {
      await execFileAsync(
        'mount',
        ['-t', 'tmpfs', '-o', `size=${init.sizeBytes},mode=0700,nosuid,nodev`, 'tmpfs', dir],
        { timeout: 15_000 },
      )
    } catch {
      // not permitted here: the workspace directory it is, wiped file by file
      await rm(dir, { recursive: true, force: true })
      return plainDir()
    }
    let released = false
    const release = async () => {
      if (released) return
      released = true
      await execFileAsync('umount', [dir], { timeout: 15_000 }).catch(() =>
        execFileAsync('umount', ['-l', dir], { timeout: 15_000 }),
      )
      await rm(dir, { recursive: true, force: true })
    }
    ws.trackHandle(release)
    // the mounted tmpfs's root: this uid's, 0700
    await checkOwnedDir(dir).catch(async (err: unknown) => {
      await release().catch(() => {})
      throw err
    })
    return { dir, tmpfs: true, release }
  }
  return plainDir()
}
