/**
 * The OCI state directory of image runs, and every run directory in it, must be a place only
 * the executor's own uid (root) controls. Another local user who made that folder first (the
 * old default was the guessable `/tmp/digicap-oci-0`), or who owns a folder above it, could
 * plant runc state whose `poststop` hook the start-up sweep ran as root, and swap a run
 * directory so root wrote the plaintext input into the user's folder (ADR 0075).
 * Real files, a real second uid (nobody, via setpriv), real runc. Runs as root only.
 */
import { spawnSync } from 'node:child_process'
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultOciStateDir, OciStateDirError, sweepOciLeftovers } from '../src/index.ts'
import { createRunWorkspace } from '../src/run/workspace.ts'
import { makeRunDir } from '../src/sandbox/oci/run-dir.ts'
import { createScratch } from '../src/sandbox/oci/scratch.ts'

const isRoot = process.getuid?.() === 0
const NOBODY = 65534

/** Runs a shell command as nobody (uid 65534). */
function asNobody(cmd: string) {
  const r = spawnSync(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', '/bin/sh', '-c', cmd],
    { encoding: 'utf8' },
  )
  return { code: r.status, out: r.stdout + r.stderr }
}

const exists = (p: string) =>
  lstat(p).then(
    () => true,
    () => false,
  )

/** runc state of a stopped container whose poststop hook writes `id -u` to `pwned`. */
function evilState(pwned: string): string {
  return JSON.stringify({
    id: 'evil',
    init_process_pid: 999999,
    init_process_start: 1,
    created: '2026-01-01T00:00:00Z',
    config: {
      rootfs: '/',
      namespaces: [{ type: 'NEWPID', path: '' }],
      cgroups: { path: '', memory: 0 },
      hooks: { poststop: [{ path: '/bin/sh', args: ['sh', '-c', `id -u > ${pwned}`] }] },
    },
    rootless: false,
    cgroup_paths: {},
    namespace_paths: {},
  })
}

/** Has nobody plant a dead executor's run dir holding that runc state under `dir`. */
function plantAsNobody(dir: string, pwned: string) {
  const plant = asNobody(
    `mkdir -p ${dir}/runc/evil && cat > ${dir}/runc/evil/state.json <<'EOF'\n${evilState(pwned)}\nEOF`,
  )
  expect(plant.code, plant.out).toBe(0)
}

describe.runIf(isRoot)('OCI state directory: only the executor uid controls it', () => {
  // A stand-in for /tmp (root's, 1777), so as not to touch this box's real state directory.
  let fakeTmp: string
  beforeAll(async () => {
    fakeTmp = await mkdtemp(join(tmpdir(), 'oci-state-owner-'))
    await chmod(fakeTmp, 0o1777)
  })
  afterAll(async () => {
    await rm(fakeTmp, { recursive: true, force: true })
  })
  const fresh = async () => {
    const d = await mkdtemp(join(fakeTmp, 'case-'))
    await chmod(d, 0o1777)
    return d
  }

  it('the default is not in the shared temp dir: /run/digicap-oci for root', () => {
    expect(defaultOciStateDir()).toBe('/run/digicap-oci')
    expect(defaultOciStateDir().startsWith(tmpdir())).toBe(false)
  })

  it('a state folder another user made first is refused: no run folder, no plaintext', async () => {
    const tmp = await fresh()
    const stateDir = join(tmp, 'digicap-oci-0')
    expect(asNobody(`mkdir -m 0777 ${stateDir}`).code).toBe(0)
    const err = await makeRunDir(stateDir).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OciStateDirError)
    expect((err as OciStateDirError).details).toMatchObject({ uid: NOBODY })
    expect((err as OciStateDirError).hint).toBeTruthy()
    // the scratch (tmpfs or the plain-folder fallback) refuses it too: nothing written there
    for (const tmpfs of [true, false]) {
      const ws = createRunWorkspace()
      await expect(createScratch(ws, { stateDir, sizeBytes: 1 << 20, tmpfs })).rejects.toThrow(
        OciStateDirError,
      )
      await ws.dispose()
    }
    expect(await readdir(stateDir)).toEqual([])
  })

  it('a state folder that is a symbolic link (to a folder of another user) is refused', async () => {
    const tmp = await fresh()
    const theirs = join(tmp, 'theirs')
    const stateDir = join(tmp, 'digicap-oci-0')
    expect(asNobody(`mkdir -m 0777 ${theirs} && ln -s ${theirs} ${stateDir}`).code).toBe(0)
    await expect(makeRunDir(stateDir)).rejects.toThrow(OciStateDirError)
    // even a link to a folder root owns: the path is not the folder
    const rootOwned = join(tmp, 'mine')
    await mkdir(rootOwned, { mode: 0o700 })
    const linked = join(tmp, 'linked')
    await symlink(rootOwned, linked)
    await expect(makeRunDir(linked)).rejects.toThrow(OciStateDirError)
    expect(await readdir(theirs)).toEqual([])
    expect(await readdir(rootOwned)).toEqual([])
  })

  it("root's own state folder with a group/other write bit is refused", async () => {
    const tmp = await fresh()
    const stateDir = join(tmp, 'state')
    await mkdir(stateDir)
    await chmod(stateDir, 0o777)
    await expect(makeRunDir(stateDir)).rejects.toThrow(OciStateDirError)
    await chmod(stateDir, 0o770)
    await expect(makeRunDir(stateDir)).rejects.toThrow(OciStateDirError)
  })

  it('a state folder under a folder another user can rename in is refused, even if root made it', async () => {
    const tmp = await fresh()
    const theirs = join(tmp, 'theirs')
    expect(asNobody(`mkdir -m 0755 ${theirs}`).code).toBe(0)
    const stateDir = join(theirs, 'state')
    await mkdir(stateDir, { mode: 0o700 }) // root's, but nobody may rename it away
    await expect(makeRunDir(stateDir)).rejects.toThrow(OciStateDirError)
    expect(await readdir(stateDir)).toEqual([])
  })

  it('a good state folder is made 0700 by root (missing parents too), and its run folders cannot be swapped', async () => {
    const tmp = await fresh()
    const stateDir = join(tmp, 'a', 'b', 'oci')
    const runDir = await makeRunDir(stateDir)
    for (const d of [join(tmp, 'a'), join(tmp, 'a', 'b'), stateDir, runDir]) {
      const st = await lstat(d)
      expect(st.isDirectory()).toBe(true)
      expect(st.uid).toBe(0)
      expect(st.mode & 0o777).toBe(0o700)
    }
    expect(runDir.startsWith(`${stateDir}/run-${process.pid}.`)).toBe(true)
    // the review's swap: nobody cannot rename root's run folder nor put its own in its place
    const swap = asNobody(`mv ${runDir} ${runDir}.away || mkdir -m 0777 ${runDir}.x`)
    expect(swap.code).not.toBe(0)
    expect(await exists(`${runDir}.away`)).toBe(false)
    // a second run folder is a fresh name (mkdtemp: O_EXCL), never one that already exists
    const second = await makeRunDir(stateDir)
    expect(second).not.toBe(runDir)
  })

  it('the start-up sweep runs nothing in a state folder another user made (no root hook)', async () => {
    const tmp = await fresh()
    const stateDir = join(tmp, 'digicap-oci-0')
    const pwned = join(tmp, 'pwned')
    expect(asNobody(`mkdir -m 0777 ${stateDir}`).code).toBe(0)
    plantAsNobody(join(stateDir, 'run-999999.1-planted'), pwned)
    const report = await sweepOciLeftovers({ stateDir, runc: 'runc' })
    expect(report.containers).toBe(0)
    expect(report.runs).toBe(0)
    expect(report.skipped).toEqual([stateDir])
    expect(await exists(pwned)).toBe(false)
    expect(await exists(join(stateDir, 'run-999999.1-planted', 'runc', 'evil', 'state.json'))).toBe(
      true,
    )
  })

  it("the sweep skips run entries that are links or not root's, and still sweeps root's own", async () => {
    const tmp = await fresh()
    const stateDir = join(tmp, 'state')
    await mkdir(stateDir, { mode: 0o700 })
    const pwned = join(tmp, 'pwned')
    // a link to a folder nobody filled
    const theirs = join(tmp, 'theirs')
    plantAsNobody(theirs, pwned)
    await symlink(theirs, join(stateDir, 'run-999999.1-link'))
    // a dead executor's run folder that belongs to nobody
    const foreign = join(stateDir, 'run-999998.1-foreign')
    await mkdir(join(foreign, 'runc', 'evil'), { recursive: true })
    await writeFile(join(foreign, 'runc', 'evil', 'state.json'), evilState(pwned))
    for (const p of [foreign, join(foreign, 'runc'), join(foreign, 'runc', 'evil')])
      await chown(p, NOBODY, NOBODY)
    // root's run folder whose runc state folder is a link to nobody's
    const linkedRoot = join(stateDir, 'run-999997.1-linkedroot')
    await mkdir(linkedRoot, { mode: 0o700 })
    await symlink(join(theirs, 'runc'), join(linkedRoot, 'runc'))
    // root's own leftover of a dead executor: swept as before
    const mine = join(stateDir, 'run-999996.1-mine')
    await mkdir(join(mine, 'rootfs'), { recursive: true, mode: 0o700 })

    const report = await sweepOciLeftovers({ stateDir, runc: 'runc' })
    expect(await exists(pwned)).toBe(false)
    expect(report.containers).toBe(0)
    expect(report.runs).toBe(1)
    expect([...report.skipped].sort()).toEqual(
      ['run-999997.1-linkedroot/runc', 'run-999998.1-foreign', 'run-999999.1-link'].map((n) =>
        join(stateDir, n),
      ),
    )
    expect((await readdir(stateDir)).sort()).toEqual([
      'run-999997.1-linkedroot',
      'run-999998.1-foreign',
      'run-999999.1-link',
    ])
    expect((await stat(join(theirs, 'runc', 'evil', 'state.json'))).uid).toBe(NOBODY)
  })
})
