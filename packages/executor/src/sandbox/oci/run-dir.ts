/**
 * The executor's OCI state directory: one directory per image run, named after the process
 * that owns it (`run-<pid>.<start time>-XXXXXX`, the start time from /proc telling a reused
 * pid apart). A run's tmpfs, rootfs, decrypted layers, input and runc state all live under it.
 * The start-up sweep removes every run whose owner is gone: the container is killed and
 * deleted, the tmpfs unmounted, the directory removed, and every cgroup of a dead executor's
 * container emptied and removed, so a crashed executor's run leaves nothing past the next
 * start (the run guard usually cleaned it already).
 */
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

// `digicap-` when the run workspace made it (the no-tmpfs fallback)
const RUN_DIR = /^(?:digicap-)?run-(\d+)\.(\d+)-/

/** Default state directory: per user, under the OS temp dir (usually a tmpfs or wiped at boot). */
export function defaultOciStateDir(): string {
  return join(tmpdir(), `digicap-oci-${process.getuid?.() ?? 'user'}`)
}

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or undefined. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

/** This process as an owner: `<pid>.<start time>` (a reused pid has another start time). */
export async function ownerTag(): Promise<string> {
  return `${process.pid}.${(await startTimeOf(process.pid)) ?? '0'}`
}

/** The name prefix that marks a run directory as this process's. */
export async function runDirPrefix(): Promise<string> {
  return `run-${await ownerTag()}-`
}

/** A container id (and cgroup name) of an image run: `digicap-<16 hex>-<owner pid>.<start>`. */
const CONTAINER_ID = /^digicap-[0-9a-f]{16}-(\d+)\.(\d+)$/
/** Where runc makes a container's cgroup (`cgroupsPath` /digicap/<id>): v1 controllers, or v2. */
const CGROUP_ROOT = '/sys/fs/cgroup'

/** The `digicap` parent cgroups: one per v1 controller, or the v2 tree's. */
async function digicapCgroupDirs(): Promise<string[]> {
  const dirs = [join(CGROUP_ROOT, 'digicap')]
  for (const c of await readdir(CGROUP_ROOT).catch(() => [] as string[])) {
    dirs.push(join(CGROUP_ROOT, c, 'digicap'))
  }
  const found: string[] = []
  for (const d of dirs)
    if (
      await readdir(d).then(
        () => true,
        () => false,
      )
    )
      found.push(d)
  return found
}

/**
 * Kills every process of a cgroup until none is left, then removes it. SIGKILLed processes
 * cannot fork, and the pids limit bounds the rest, so the loop ends.
 */
async function killCgroup(dir: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const procs = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.length > 0)
    if (procs.length === 0) break
    for (const pid of procs) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // gone already
      }
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  await rmdir(dir)
}

/**
 * The cgroups of containers whose executor is gone (its pid and start time in the id): a
 * container can outlive both its executor and its run directory when runc was killed
 * mid-create. Every process in them is killed and they are removed.
 */
async function sweepCgroups(report: { cgroups: number; failures: string[] }): Promise<void> {
  const dead = new Map<string, boolean>()
  const removed = new Set<string>()
  for (const parent of await digicapCgroupDirs()) {
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      const owner = CONTAINER_ID.exec(name)
      if (!owner) continue
      const [, pid, start] = owner
      const key = `${pid}.${start}`
      if (!dead.has(key)) dead.set(key, (await startTimeOf(Number(pid))) !== start)
      if (!dead.get(key)) continue // its executor still runs it
      await killCgroup(join(parent, name)).then(
        () => removed.add(name),
        (err: Error) => report.failures.push(`cgroup: ${err.message.split('\n')[0]}`),
      )
    }
  }
  report.cgroups += removed.size
}

/** Makes this process's fresh 0700 run directory under the state directory. */
export async function makeRunDir(stateDir: string): Promise<string> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  return mkdtemp(join(stateDir, await runDirPrefix()))
}

export interface SweepReport {
  /** Run directories of dead owners removed. */
  readonly runs: number
  /** Containers runc still knew in them (killed and deleted). */
  readonly containers: number
  /** tmpfs mounts taken down. */
  readonly unmounted: number
  /**
   * Containers of dead executors whose cgroups were emptied and removed (in every controller):
   * what a `runc run` killed mid-create left, which runc itself does not know.
   */
  readonly cgroups: number
  /** Steps that failed (message only). */
  readonly failures: readonly string[]
}

/**
 * Removes the leftovers of image runs whose executor process is gone.
 * Never throws: what it could not remove is in `failures`.
 */
export async function sweepOciLeftovers(init: {
  readonly stateDir: string
  readonly runc?: string | undefined
}): Promise<SweepReport> {
  const runc = init.runc ?? 'runc'
  const report = { runs: 0, containers: 0, unmounted: 0, cgroups: 0, failures: [] as string[] }
  let names: string[]
  try {
    names = await readdir(init.stateDir)
  } catch {
    names = [] // no state directory yet: nothing ever ran here (its cgroups are still swept)
  }
  for (const name of names) {
    const owner = RUN_DIR.exec(name)
    if (!owner) continue
    const [, pid, start] = owner
    if ((await startTimeOf(Number(pid))) === start) continue // its executor still runs it
    const dir = join(init.stateDir, name)
    const stateRoot = join(dir, 'runc')
    try {
      const { stdout } = await execFileAsync(runc, ['--root', stateRoot, 'list', '--quiet'], {
        timeout: 15_000,
      })
      for (const id of stdout.split('\n').filter((l) => l.length > 0)) {
        await execFileAsync(runc, ['--root', stateRoot, 'delete', '--force', id], {
          timeout: 15_000,
        })
        report.containers++
      }
    } catch (err) {
      // no runc state (the run had not reached its container) lists nothing; anything else:
      if (!/no such file|not exist/i.test(String((err as { stderr?: string }).stderr ?? ''))) {
        report.failures.push(`runc: ${(err as Error).message.split('\n')[0]}`)
      }
    }
    if ((await readFile('/proc/self/mounts', 'utf8')).includes(` ${dir} `)) {
      await execFileAsync('umount', [dir], { timeout: 15_000 })
        .catch(() => execFileAsync('umount', ['-l', dir], { timeout: 15_000 }))
        .then(
          () => report.unmounted++,
          (err: Error) => report.failures.push(`umount: ${err.message.split('\n')[0]}`),
        )
    }
    await rm(dir, { recursive: true, force: true }).then(
      () => report.runs++,
      (err: Error) => report.failures.push(`rm: ${err.message}`),
    )
  }
  // after runc's delete: what is left in a dead executor's cgroup, runc no longer knows
  await sweepCgroups(report)
  return report
}
