/**
 * The executor's OCI state directory: one directory per image run, named after the process
 * that owns it (`run-<pid>.<start time>-XXXXXX`, the start time from /proc telling a reused
 * pid apart). A run's tmpfs, rootfs, decrypted layers, input and runc state all live under it.
 * The start-up sweep removes every run whose owner is gone: the container is killed and
 * deleted, the tmpfs unmounted, the directory removed, and every cgroup of a dead executor's
 * container emptied and removed, so a crashed executor's run leaves nothing past the next
 * start (the run guard usually cleaned it already).
 *
 * Only this uid may control that directory (ADR 0075): runc runs the hooks of the state it
 * is pointed at, and the run's plaintext input is written there. The state directory is made
 * with a non-recursive mkdir and checked with lstat (a real directory of this uid, no group or
 * other write bit), every folder above it must be root's or this uid's and not writable by
 * others (unless sticky), run directories are fresh mkdtemp names checked the same way, and
 * the sweep skips (and reports) any entry that is a link or another user's.
 */
import { execFile } from 'node:child_process'
import { accessSync, constants, existsSync, type Stats, statSync } from 'node:fs'
import { lstat, mkdir, mkdtemp, readdir, readFile, realpath, rm, rmdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, isAbsolute, join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { OciStateDirError } from '../../errors.ts'

const execFileAsync = promisify(execFile)

// `digicap-` when the run workspace made it (the no-tmpfs fallback)
const RUN_DIR = /^(?:digicap-)?run-(\d+)\.(\d+)-/

/**
 * `/run/digicap-oci` when `/run` is root's alone (a tmpfs wiped at boot on every systemd host)
 * and the folder is there already (made by the admin, or systemd's `RuntimeDirectory=`) or
 * `/run` is writable (it is not under `ProtectSystem=strict`: then the unit's PrivateTmp is
 * used, see defaultOciStateDir).
 */
function rootRunDir(): string | undefined {
  try {
    const st = statSync('/run')
    if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) return undefined
    const dir = '/run/digicap-oci'
    if (!existsSync(dir)) accessSync('/run', constants.W_OK)
    return dir
  } catch {
    return undefined
  }
}

/**
 * Default state directory, a place only this uid (and root) controls (ADR 0075): for root
 * `/run/digicap-oci` (a tmpfs only root may write, wiped at boot); for another uid
 * `$XDG_RUNTIME_DIR/digicap-oci` (its own 0700 runtime folder); else `digicap-oci-<uid>` under
 * the OS temp dir (a unit's PrivateTmp under `ProtectSystem=strict`), used only if this uid
 * made it: another user's, a link, or a group/other-writable one is refused (OCI_STATE_DIR).
 */
export function defaultOciStateDir(): string {
  const uid = process.getuid?.()
  const run = uid === 0 ? rootRunDir() : undefined
  if (run !== undefined) return run
  const xdg = process.env.XDG_RUNTIME_DIR
  if (uid !== undefined && uid !== 0 && xdg !== undefined && isAbsolute(xdg)) {
    return join(xdg, 'digicap-oci')
  }
  return join(tmpdir(), `digicap-oci-${uid ?? 'user'}`)
}

const UNSAFE_HINT =
  'The OCI state directory must be a folder only the executor user controls: remove it (or ' +
  'chown it and chmod 0700) if you made it, or give ociSandbox({ stateDir }) a folder such as ' +
  '/run/digicap-oci (root) whose parents only root or this user can write.'

function unsafe(path: string, reason: string, st?: Stats): OciStateDirError {
  return new OciStateDirError("The OCI state directory is not under this user's sole control", {
    details: {
      path,
      reason,
      ...(st === undefined ? {} : { uid: st.uid, mode: `0${(st.mode & 0o7777).toString(8)}` }),
    },
    hint: UNSAFE_HINT,
  })
}

/** Why `st` (from lstat) is not a directory only this uid controls, or undefined if it is. */
function notOwnedDir(st: Stats): string | undefined {
  if (st.isSymbolicLink()) return 'a symbolic link'
  if (!st.isDirectory()) return 'not a directory'
  const uid = process.getuid?.()
  if (uid !== undefined && st.uid !== uid) return 'owned by another user'
  if ((st.mode & 0o022) !== 0) return 'writable by group or others'
  return undefined
}

/**
 * Checks with lstat that `path` is a real directory of this uid with no group or other write
 * bit. @throws {OciStateDirError}
 */
export async function checkOwnedDir(path: string): Promise<void> {
  let st: Stats
  try {
    st = await lstat(path)
  } catch (cause) {
    throw new OciStateDirError('An OCI state folder is missing', {
      cause,
      details: { path, reason: (cause as NodeJS.ErrnoException).code ?? 'unreadable' },
      hint: UNSAFE_HINT,
    })
  }
  const why = notOwnedDir(st)
  if (why !== undefined) throw unsafe(path, why, st)
}

/**
 * Every folder from `dir` (already resolved, no links) up to `/` must be root's or this uid's,
 * and not writable by group or others unless sticky (then only its owners may rename what
 * root or this uid made in it). @throws {OciStateDirError}
 */
async function checkAncestors(dir: string): Promise<void> {
  const uid = process.getuid?.()
  if (uid === undefined) return
  for (let p = dir; ; p = dirname(p)) {
    const st = await lstat(p)
    if (st.uid !== 0 && st.uid !== uid) throw unsafe(p, 'a parent owned by another user', st)
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
      throw unsafe(p, 'a parent writable by group or others (not sticky)', st)
    }
    if (dirname(p) === p) return
  }
}

/**
 * Makes (when missing) and checks the OCI state directory, and returns the path to use from
 * then on: its parents resolved (no links left in it), the last component never followed.
 * Missing parents are made one at a time (0700, non-recursive) and checked like the state
 * directory. With `create: false` a missing state directory gives undefined.
 * @throws {OciStateDirError}
 */
export async function ensureOciStateDir(
  stateDir: string,
  options: { readonly create?: boolean } = {},
): Promise<string | undefined> {
  const create = options.create !== false
  const wanted = resolve(stateDir)
  const name = basename(wanted)
  // the deepest parent that exists, then the ones to make below it
  const missing: string[] = []
  let base = dirname(wanted)
  for (;;) {
    try {
      await lstat(base)
      break
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(base) === base) {
        throw unsafe(base, 'a parent cannot be read')
      }
      if (!create) return undefined
      missing.unshift(basename(base))
      base = dirname(base)
    }
  }
  let dir: string
  try {
    dir = await realpath(base)
  } catch {
    throw unsafe(base, 'a parent cannot be resolved')
  }
  await checkAncestors(dir)
  for (const part of [...missing, name]) {
    dir = join(dir, part)
    if (create) {
      try {
        await mkdir(dir, { mode: 0o700 }) // one level: never through a link another user made
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code
        if (code !== 'EEXIST') throw unsafe(dir, `cannot be made (${code ?? 'error'})`)
      }
    } else if (
      !(await lstat(dir).then(
        () => true,
        () => false,
      ))
    ) {
      return undefined
    }
    await checkOwnedDir(dir)
  }
  return dir
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

/**
 * Makes this process's fresh 0700 run directory under the state directory (made and checked
 * first): a new random name (mkdtemp: O_EXCL, never a folder that was there), checked with
 * lstat after. @throws {OciStateDirError}
 */
export async function makeRunDir(stateDir: string): Promise<string> {
  const root = (await ensureOciStateDir(stateDir)) as string
  const dir = await mkdtemp(join(root, await runDirPrefix()))
  await checkOwnedDir(dir)
  return dir
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
  /**
   * Paths left alone because this uid does not solely control them (ADR 0075): the state
   * directory itself, or run entries (or their `runc` state folder) that are links or another
   * user's. Nothing in them was run, deleted or unmounted.
   */
  readonly skipped: readonly string[]
}

/** `runc delete --force` of every container runc knows under a checked state root. */
async function deleteContainers(
  runc: string,
  stateRoot: string,
  report: { containers: number; failures: string[] },
): Promise<void> {
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
    // an empty runc state lists nothing; anything else:
    if (!/no such file|not exist/i.test(String((err as { stderr?: string }).stderr ?? ''))) {
      report.failures.push(`runc: ${(err as Error).message.split('\n')[0]}`)
    }
  }
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
  const report = {
    runs: 0,
    containers: 0,
    unmounted: 0,
    cgroups: 0,
    failures: [] as string[],
    skipped: [] as string[],
  }
  let names: string[] = []
  let root: string | undefined
  try {
    root = await ensureOciStateDir(init.stateDir, { create: false })
    if (root !== undefined) names = await readdir(root)
  } catch (err) {
    // another user's folder (or a link): runc must not be pointed at anything in it
    if (err instanceof OciStateDirError) {
      report.skipped.push(init.stateDir)
      report.failures.push(`state dir: ${err.details.reason} (${err.details.path})`)
    }
    names = [] // no state directory yet: nothing ever ran here (its cgroups are still swept)
  }
  for (const name of root === undefined ? [] : names) {
    const owner = RUN_DIR.exec(name)
    if (!owner) continue
    const [, pid, start] = owner
    if ((await startTimeOf(Number(pid))) === start) continue // its executor still runs it
    const dir = join(root as string, name)
    const stateRoot = join(dir, 'runc')
    // a link or another user's entry is not this executor's leftover: left alone, reported
    const entry = await lstat(dir).catch(() => undefined)
    if (entry === undefined) continue
    if (notOwnedDir(entry) !== undefined) {
      report.skipped.push(dir)
      continue
    }
    const runcState = await lstat(stateRoot).catch(() => undefined)
    if (runcState !== undefined && notOwnedDir(runcState) !== undefined) {
      report.skipped.push(stateRoot)
      continue
    }
    // no runc state folder: the run had not reached its container
    if (runcState !== undefined) await deleteContainers(runc, stateRoot, report)
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
