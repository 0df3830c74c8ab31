/**
 * A real systemd for the units' tests (pi-node's packed-install test, executor-node's OCI unit
 * test): `systemd-nspawn` boots systemd as PID 1 of a container, so `systemctl start` runs a
 * unit as on a host: its user, its hardening (mount, PID and capability sandboxing, seccomp),
 * `Type=notify` readiness, the journal. The root is either an `install-pi.sh --root` tree (its
 * /usr layered over the host's, read-only) or the host's own /usr on a tmpfs root with the given
 * binds. The container shares the host's network (anvil, swtpm, ops ports on loopback). It
 * boots `digicap-test.target`, which pulls nothing: no service of the host image starts.
 * Needs root and `systemd-nspawn` (Debian: systemd-container): CI machines here are VMs or
 * containers whose PID 1 is not systemd.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFile, link, mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const exec = promisify(execFile)

export const SERVICE_UID = 990

export interface BootedContainer {
  /** Runs a command in the container (all its namespaces), as root or `user`, with only `env`. */
  run(
    args: string[],
    options?: { user?: string; env?: Record<string, string> },
  ): Promise<{ code: number; stdout: string; stderr: string }>
  /** `systemctl <args>` in the container. */
  systemctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>
  /** The container's boot messages so far (for failures). */
  console(): string
  /** Powers the container off (SIGKILL after 15 s). */
  stop(): Promise<void>
}

/**
 * Makes an `install-pi.sh --root` tree bootable: the merged-/usr links, os-release, a machine
 * id, the `digicap` user (uid 990) in groups `digicap` and `tss` (install-pi.sh creates it with
 * useradd on a real root), node 24 as `/usr/local/bin/node` (the app's `#!/usr/bin/env node`),
 * the data folder owned by the service user, and the empty boot target.
 */
export async function prepareBootableRoot(root: string, nodeBinary: string): Promise<void> {
  for (const d of ['tmp', 'var/tmp', 'usr/lib', 'etc/systemd/system', 'usr/local/bin'])
    await mkdir(join(root, d), { recursive: true })
  for (const d of ['bin', 'lib', 'lib64', 'sbin']) await symlink(`usr/${d}`, join(root, d))
  await symlink('../run', join(root, 'var/run'))
  await copyFile('/usr/lib/os-release', join(root, 'usr/lib/os-release'))
  await symlink('../usr/lib/os-release', join(root, 'etc/os-release'))
  // Not a first boot: systemd does not fill /etc with the host image's presets.
  await writeFile(join(root, 'etc/machine-id'), `${randomBytes(16).toString('hex')}\n`)
  await writeFile(
    join(root, 'etc/passwd'),
    `root:x:0:0:root:/root:/bin/sh\ndigicap:x:${SERVICE_UID}:${SERVICE_UID}::/var/lib/digicap:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
  )
  await writeFile(
    join(root, 'etc/group'),
    `root:x:0:\ndigicap:x:${SERVICE_UID}:\ntss:x:${SERVICE_UID - 1}:digicap\nnogroup:x:65534:\n`,
  )
  await link(nodeBinary, join(root, 'usr/local/bin/node')).catch(() =>
    copyFile(nodeBinary, join(root, 'usr/local/bin/node')),
  )
  await exec('chown', ['-R', `${SERVICE_UID}:${SERVICE_UID}`, join(root, 'var/lib/digicap')])
  await writeFile(join(root, 'etc/systemd/system/digicap-test.target'), TEST_TARGET)
}

/** The nspawn'd PID 1 (systemd), as a host PID. */
async function containerInit(nspawn: ChildProcess, ms: number): Promise<number> {
  const deadline = Date.now() + ms
  for (;;) {
    const { stdout } = await exec('pgrep', ['-P', String(nspawn.pid)]).catch(() => ({
      stdout: '',
    }))
    const pid = Number(stdout.trim().split('\n')[0])
    if (pid > 0) {
      const comm = await exec('cat', [`/proc/${pid}/comm`]).catch(() => ({ stdout: '' }))
      if (comm.stdout.trim() === 'systemd') return pid
    }
    if (nspawn.exitCode !== null || Date.now() > deadline)
      throw new Error('systemd-nspawn did not start systemd')
    await new Promise((r) => setTimeout(r, 100))
  }
}

export interface BootOptions {
  /**
   * An `install-pi.sh --root` tree made bootable by {@link prepareBootableRoot}. Without it the
   * root is a tmpfs with the host's /usr (`--volatile=yes`): units and users come in by `binds`.
   */
  root?: string
  /** `host:container` paths bound read-write, or read-only with a `ro:` prefix. */
  binds?: readonly string[]
  /**
   * What rootful runc needs from the container itself (not from the unit under test): the
   * CAP_NET_ADMIN nspawn withholds when the network is shared, the keyring calls its seccomp
   * filter denies, and the cgroup v1 controllers it mounts read-only made writable.
   */
  runc?: boolean
}

/** The empty boot target (pulls nothing), for a `--volatile` root's units folder. */
export const TEST_TARGET = '[Unit]\nDescription=Digicap unit test (pulls nothing)\n'

/** Boots systemd (see the file's comment); resolves once its boot has finished. */
export async function bootContainer(o: BootOptions): Promise<BootedContainer> {
  const where = o.root
    ? // The host's /usr below, the tree's own /usr (the installed app, node) above, read-only.
      ['--directory', o.root, '--overlay-ro=/usr:+/usr:/usr']
    : ['--directory', '/', '--volatile=yes']
  const binds = (o.binds ?? []).map((b) =>
    b.startsWith('ro:') ? `--bind-ro=${b.slice(3)}` : `--bind=${b}`,
  )
  const runc = o.runc ? ['--capability=CAP_NET_ADMIN', '--system-call-filter=@keyring'] : []
  const nspawn = spawn(
    'systemd-nspawn',
    [
      ...where,
      '--quiet',
      // No machined / D-Bus on this host: no registration, no scope unit.
      '--register=no',
      '--keep-unit',
      ...runc,
      ...binds,
      '--boot',
      '--',
      '--unit=digicap-test.target',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let output = ''
  nspawn.stdout?.on('data', (d) => {
    output += d
  })
  nspawn.stderr?.on('data', (d) => {
    output += d
  })
  const exited = new Promise<void>((resolve) => nspawn.once('close', () => resolve()))
  const init = await containerInit(nspawn, 30_000).catch((err: Error) => {
    nspawn.kill('SIGKILL')
    throw new Error(`${err.message}:\n${output}`)
  })
  const run: BootedContainer['run'] = async (args, options = {}) => {
    const as = options.user
      ? ['setpriv', '--reuid', options.user, '--regid', options.user, '--init-groups']
      : []
    const envArgs = Object.entries({ PATH: '/usr/local/bin:/usr/bin:/bin', ...options.env }).map(
      ([k, v]) => `${k}=${v}`,
    )
    return new Promise((resolve) => {
      execFile(
        'nsenter',
        ['--target', String(init), '--all', ...as, 'env', '-i', ...envArgs, ...args],
        { timeout: 120_000 },
        (err, stdout, stderr) => {
          const code = err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0
          resolve({ code, stdout: String(stdout), stderr: String(stderr) })
        },
      )
    })
  }
  const systemctl = (...args: string[]) => run(['systemctl', '--no-pager', ...args])
  // Waits for the manager's socket, then until the boot transaction is done (`running`, or
  // `degraded` for a unit of the image).
  const deadline = Date.now() + 30_000
  while ((await run(['test', '-S', '/run/systemd/private'])).code !== 0) {
    if (nspawn.exitCode !== null || Date.now() > deadline) {
      nspawn.kill('SIGKILL')
      throw new Error(`systemd in the container never listened:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  await systemctl('is-system-running', '--wait')
  if (o.runc) {
    const controllers = [
      'cpu',
      'cpuacct',
      'cpuset',
      'memory',
      'devices',
      'freezer',
      'blkio',
      'pids',
    ]
    const script = controllers
      .map((c) => `[ ! -d /sys/fs/cgroup/${c} ] || mount -o remount,bind,rw /sys/fs/cgroup/${c}`)
      .join(' && ')
    const rw = await run(['sh', '-c', script])
    if (rw.code !== 0) throw new Error(`cgroup controllers stay read-only: ${rw.stderr}`)
  }
  return {
    run,
    systemctl,
    console: () => output,
    async stop() {
      if (nspawn.exitCode !== null) return
      await systemctl('poweroff').catch(() => undefined)
      const timer = setTimeout(() => nspawn.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
    },
  }
}
