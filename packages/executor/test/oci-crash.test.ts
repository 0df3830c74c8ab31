/**
 * A container never outlives its executor. An image run goes in a child executor process
 * (real runc, umoci, helia blockstore), which the test SIGKILLs at three points: right after
 * the key was released (the run's tmpfs made, the pull under way), while the layers unpack,
 * and while the container runs. The run's guard must then kill and delete the container, kill
 * umoci, unmount the tmpfs (rootfs, decrypted layers, input) and remove the run directory:
 * no container, no process, no mount, no file. When the guard is killed too (a service stop
 * that kills the whole cgroup), the next executor start sweeps the crashed run's leftovers,
 * and never touches a run whose executor is alive.
 */
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  access,
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  rmdir,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { collectOutput } from '@digicap/cli-kit'
import { createDigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildBusyboxImage } from '../../oci/test/busybox-image.ts'
import { sweepOciLeftovers } from '../src/sandbox/oci/run-dir.ts'
import { type SealedImage, sealImageLayout } from './helpers/sealed-image.ts'

const execFileAsync = promisify(execFile)
const CHILD = fileURLToPath(new URL('./helpers/oci-crash-child.ts', import.meta.url))
// a command no other test runs: `ps` finds the container's process by it
const MARK = String(40_000 + Math.floor(Math.random() * 9_999))

interface Child {
  pid: number
  /** Hands a job child its job (it runs it at once). */
  run(job: unknown): void
  /** Lets a job child start its run. */
  go(): void
  /** Resolves with the first JSON line that matches. */
  next(match: (doc: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>
  exited: Promise<number | null>
  ended(): boolean
}

function startChild(config: unknown): Child {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CHILD], {
    env: { ...process.env, OCI_CRASH_CHILD: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const docs: Record<string, unknown>[] = []
  const waiters: Array<() => void> = []
  const { stderr } = collectOutput(child)
  let buffered = ''
  child.stdout.on('data', (d) => {
    buffered += d
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      docs.push(JSON.parse(buffered.slice(0, i)))
      buffered = buffered.slice(i + 1)
      for (const w of waiters.splice(0)) w()
    }
  })
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      for (const w of waiters.splice(0)) w()
      resolve(code)
    }),
  )
  return {
    pid: child.pid as number,
    run: (job) => child.stdin.write(`${JSON.stringify(job)}\n`),
    go: () => child.stdin.write('go\n'),
    exited,
    ended: () => child.exitCode !== null || child.signalCode !== null,
    async next(match) {
      for (;;) {
        const found = docs.find(match)
        if (found) return found
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(
            `child ended (${child.exitCode ?? child.signalCode}): ${stderr().slice(-800)}`,
          )
        }
        await new Promise<void>((r) => waiters.push(r))
      }
    },
  }
}

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const psArgs = async () => (await execFileAsync('ps', ['-eo', 'pid=,args='])).stdout

/**
 * Fault injection: runc, except that `runc run` (args: --root R run --bundle B id) gets a
 * createRuntime hook that writes runc's pid to `marker` and sleeps 5 s. runc runs it mid-create,
 * before it writes any state: the container's `runc init` waits in its cgroup, and `runc list`,
 * `kill` and `delete` know nothing of it (the window in which an executor killed at the wrong
 * moment could leave a container that then started on its own).
 */
const STALL_RUNC = (marker: string) => `#!/bin/sh
if [ "$3" = run ]; then
  me=$$ # runc's pid, once it is exec'd
  '${process.execPath}' -e '
    const fs = require("node:fs")
    const f = process.argv[1] + "/config.json"
    const c = JSON.parse(fs.readFileSync(f, "utf8"))
    c.hooks = { createRuntime: [{ path: "/bin/sh", args: ["sh", "-c", process.argv[2]] }] }
    fs.writeFileSync(f, JSON.stringify(c))' "$5" "echo $me > ${marker}.tmp && mv ${marker}.tmp ${marker}; exec sleep 5"
fi
exec runc "$@"
`

describe('an image run whose executor is SIGKILLed', () => {
  let dataDir: string
  let stateDir: string
  let sealed: SealedImage
  /** One executor per kill point, started ahead (they load helia while the image is sealed). */
  const executors: Child[] = []
  const capsuleId = new Uint8Array(randomBytes(32))
  const dataKey = new Uint8Array(randomBytes(32))

  /** Executors whose runc stalls mid-create (see STALL_RUNC), one per test that needs one. */
  const stalling: Child[] = []
  let wrapDir: string

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'oci-crash-blocks-'))
    stateDir = await mkdtemp(join(tmpdir(), 'oci-crash-state-'))
    wrapDir = await mkdtemp(join(tmpdir(), 'oci-crash-runc-'))
    const runc = join(wrapDir, 'runc')
    await writeFile(runc, STALL_RUNC(join(wrapDir, 'creating')))
    await chmod(runc, 0o755)
    for (let i = 0; i < 4; i++) executors.push(startChild({ stateDir, dataDir }))
    stalling.push(startChild({ stateDir, dataDir, runc }))
    const node = await createDigicapNode({ dataDir })
    try {
      // 16 MiB of incompressible noise: the unpack takes long enough to be caught at it
      sealed = await sealImageLayout(
        heliaCapsuleStore(node.helia),
        await buildBusyboxImage({
          files: { 'app/noise.bin': new Uint8Array(randomBytes(16 * 1024 * 1024)) },
          config: { Cmd: ['/bin/sleep', MARK] },
        }),
        { capsuleId, dataKey },
      )
    } finally {
      await node.stop()
    }
  }, 120_000)
  afterAll(async () => {
    for (const c of [...executors, ...stalling]) {
      process.kill(c.pid, 'SIGKILL')
      await c.exited
    }
    await sweepOciLeftovers({ stateDir }) // what a failed test left (every owner is dead now)
    await rm(dataDir, { recursive: true, force: true })
    await rm(stateDir, { recursive: true, force: true })
    await rm(wrapDir, { recursive: true, force: true })
  })

  /** The next started executor, ready, running the image (`sleep MARK`, no time limit). */
  async function startRun(from = executors): Promise<Child> {
    const child = from.shift() as Child
    await child.next((d) => d.ready === true)
    child.run({
      manifestDigest: sealed.manifestDigest,
      spec: Buffer.from(sealed.specBytes).toString('base64'),
      capsuleId: Buffer.from(capsuleId).toString('hex'),
      dataKey: Buffer.from(dataKey).toString('hex'),
      timeLimitMs: 600_000,
    })
    return child
  }

  /** The run directory and its running container, once runc reports it running. */
  async function runningContainer(child: Child): Promise<{ runDir: string; id: string }> {
    let found: { runDir: string; id: string } | undefined
    await until(
      async () => {
        if (child.ended()) throw new Error('the executor ended before its container ran')
        for (const name of await readdir(stateDir)) {
          const root = join(stateDir, name, 'runc')
          const { stdout } = await execFileAsync('runc', [
            '--root',
            root,
            'list',
            '--format',
            'json',
          ]).catch(() => ({ stdout: 'null' }))
          const running = (JSON.parse(stdout) ?? []).find(
            (c: { status: string }) => c.status === 'running',
          )
          if (running) found = { runDir: join(stateDir, name), id: running.id }
        }
        return found !== undefined
      },
      60_000,
      'the container running',
    )
    return found as { runDir: string; id: string }
  }

  /** No container, no process of the run, no mount, no file: the state directory is empty. */
  async function expectNothingLeft(id?: string): Promise<void> {
    expect(await readdir(stateDir)).toEqual([])
    expect(await readFile('/proc/self/mounts', 'utf8')).not.toContain(stateDir)
    const ps = await psArgs()
    expect(ps).not.toContain(`sleep ${MARK}`)
    expect(ps).not.toContain(stateDir) // runc, umoci, the guard
    if (id) {
      expect(await readdir('/sys/fs/cgroup/pids/digicap').catch(() => [])).not.toContain(id)
    }
  }

  /** The run guard has cleaned up: the state directory emptied. */
  const guardCleaned = () =>
    until(
      async () => (await readdir(stateDir)).length === 0 && !(await psArgs()).includes(stateDir),
      30_000,
      'the guard clean-up',
    )

  it('killed right after the key release (tmpfs made, pull under way): nothing left', async () => {
    const child = await startRun()
    await child.next((d) => d.step === 'scratch')
    expect((await readdir(stateDir)).length).toBe(1)
    process.kill(child.pid, 'SIGKILL')
    await child.exited
    await guardCleaned()
    await expectNothingLeft()
  }, 120_000)

  it('killed while the layers unpack: umoci killed, nothing left', async () => {
    const child = await startRun()
    await child.next((d) => d.step === 'decrypt')
    const unpacking = async () =>
      (await psArgs())
        .split('\n')
        .some((l) => l.includes('umoci raw unpack') && l.includes(stateDir))
    await until(unpacking, 20_000, 'umoci unpacking')
    process.kill(child.pid, 'SIGKILL')
    await child.exited
    await guardCleaned()
    expect(await unpacking()).toBe(false)
    await expectNothingLeft()
  }, 120_000)

  it('killed while the container runs: the container is killed and deleted, nothing left', async () => {
    const child = await startRun()
    const { id } = await runningContainer(child)
    expect(await psArgs()).toContain(`sleep ${MARK}`)
    process.kill(child.pid, 'SIGKILL')
    await child.exited
    await guardCleaned()
    await expectNothingLeft(id)
  }, 120_000)

  it('guard killed too: a fresh start sweeps the crashed run, and leaves a live run alone', async () => {
    const child = await startRun()
    const { runDir, id } = await runningContainer(child)
    // a second executor starting now must not touch this live run
    const live = startChild({ stateDir })
    expect(await live.next((d) => 'sweep' in d)).toMatchObject({
      sweep: { runs: 0, containers: 0 },
    })
    expect(await readdir(stateDir)).toEqual([runDir.slice(stateDir.length + 1)])
    // the service manager kills the whole group: executor and guard
    const guard = (await psArgs())
      .split('\n')
      .find((l) => l.includes('digicap-run-guard') && l.includes(runDir))
    expect(guard).toBeDefined()
    process.kill(Number.parseInt(guard as string, 10), 'SIGKILL')
    process.kill(child.pid, 'SIGKILL')
    await child.exited
    await new Promise((r) => setTimeout(r, 500))
    // leftovers: the container still runs, its tmpfs is still mounted
    expect(await psArgs()).toContain(`sleep ${MARK}`)
    expect(await readFile('/proc/self/mounts', 'utf8')).toContain(runDir)
    const fresh = startChild({ stateDir })
    expect(await fresh.next((d) => 'sweep' in d)).toEqual({
      sweep: { runs: 1, containers: 1, unmounted: 1, cgroups: 0, failures: [], skipped: [] },
    })
    await fresh.exited
    await expectNothingLeft(id)
  }, 120_000)

  /** Waits for the stopped `runc run`: its pid and container id. */
  async function stalledCreate(): Promise<{ runcPid: number; id: string }> {
    const marker = join(wrapDir, 'creating')
    await until(
      () =>
        access(marker).then(
          () => true,
          () => false,
        ),
      60_000,
      'runc mid-create',
    )
    const runcPid = Number((await readFile(marker, 'utf8')).trim())
    await rm(marker)
    const cmdline = (await readFile(`/proc/${runcPid}/cmdline`, 'utf8')).split('\0')
    const id = cmdline.filter(Boolean).at(-1) as string
    expect(id).toMatch(/^digicap-[0-9a-f]{16}-\d+\.\d+$/)
    return { runcPid, id }
  }

  /** Running, not gone or a zombie (pid 1 here may reap late). */
  const alive = async (pid: number | string) => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
    return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  }
  const cgroupProcs = async (id: string) =>
    (await readFile(`/sys/fs/cgroup/pids/digicap/${id}/cgroup.procs`, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)

  it('killed while runc creates the container: the guard kills runc first, then its cgroup', async () => {
    const child = await startRun(stalling)
    const { runcPid, id } = await stalledCreate()
    const procs = await cgroupProcs(id)
    expect(procs.length).toBeGreaterThan(0) // runc init, waiting in the container's cgroup
    process.kill(child.pid, 'SIGKILL')
    await child.exited
    await until(
      async () => !(await psArgs()).includes('digicap-run-guard'),
      30_000,
      'the guard to finish',
    )
    // once the guard is done, nothing of the run is left: not runc (which would go on creating
    // the container once its hook returned), not runc init
    expect(await alive(runcPid)).toBe(false)
    for (const pid of procs) expect(await alive(Number(pid))).toBe(false)
    await expectNothingLeft(id)
  }, 120_000)

  it("a fresh start kills and removes the cgroup of a dead executor's container, and leaves a live one's alone", async () => {
    // what a runc that outlived its executor and guard and lost its state leaves: a container
    // cgroup with processes, its owner gone. Made by hand: a cgroup named like a run's, a sleep
    // moved into it.
    const startOf = async (pid: number) => {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
    }
    // an owner that is gone: a process that has exited (a start time of 1 tick matches none)
    const gone = spawn('true')
    await new Promise((r) => gone.once('exit', r))
    const goneTag = `${gone.pid}.1`
    const liveTag = `${process.pid}.${await startOf(process.pid)}`
    const hex = () => randomBytes(8).toString('hex')
    const cgroups: Record<string, { dir: string; sleeper: number }> = {}
    for (const [which, tag] of [
      ['dead', goneTag],
      ['live', liveTag],
    ] as const) {
      const dir = `/sys/fs/cgroup/pids/digicap/digicap-${hex()}-${tag}`
      await mkdir(dir, { recursive: true })
      const sleeper = spawn('sleep', [MARK], { stdio: 'ignore' })
      await writeFile(join(dir, 'cgroup.procs'), String(sleeper.pid))
      cgroups[which] = { dir, sleeper: sleeper.pid as number }
    }
    try {
      const fresh = startChild({ stateDir })
      expect(await fresh.next((d) => 'sweep' in d)).toMatchObject({
        sweep: { runs: 0, cgroups: 1, failures: [] },
      })
      await fresh.exited
      expect(await alive(cgroups.dead!.sleeper)).toBe(false)
      expect(
        await access(cgroups.dead!.dir).then(
          () => true,
          () => false,
        ),
      ).toBe(false)
      // the live owner's (this process) is left as it was
      expect(await alive(cgroups.live!.sleeper)).toBe(true)
      expect(await readFile(join(cgroups.live!.dir, 'cgroup.procs'), 'utf8')).toContain(
        String(cgroups.live!.sleeper),
      )
    } finally {
      for (const { dir, sleeper } of Object.values(cgroups)) {
        try {
          process.kill(sleeper, 'SIGKILL')
        } catch {}
        await new Promise((r) => setTimeout(r, 100))
        await rmdir(dir).catch(() => {})
      }
    }
  }, 120_000)
})
