/**
 * One container's life under runc: `runc run` in the foreground with piped stdio (no
 * terminal, no daemon), a wall-clock limit that kills it, and `runc delete --force` always,
 * so no container, cgroup or process outlives the run.
 */
import { execFile, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

export interface ContainerRunInit {
  /** The runc binary (default `runc`). */
  readonly runc?: string | undefined
  /** runc's state directory for this run (`--root`), inside the run's workspace. */
  readonly stateRoot: string
  readonly bundle: string
  readonly id: string
  readonly timeLimitMs: number
  /** Most stdout bytes kept; more kills the container. */
  readonly stdoutLimitBytes: number
  /** Most stderr bytes kept (the rest is dropped, counted). */
  readonly stderrLimitBytes: number
  readonly signal?: AbortSignal | undefined
  /** The cgroup v1 memory controller dir of the container, to tell an OOM kill (optional). */
  readonly memoryCgroupDir?: string | undefined
  /**
   * Told the `runc run` pid as it starts and as it ends: the run guard kills it first if the
   * executor dies (a runc left alive goes on creating the container after the clean-up).
   */
  readonly guard?: { watch(pid: number | undefined): void; unwatch(pid: number | undefined): void }
}

export interface ContainerExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: Buffer
  readonly stderr: Buffer
  readonly stderrDropped: number
  /** Why the host ended it, if it did. */
  readonly killed?: 'time' | 'stdout-limit' | 'aborted' | undefined
  /** The kernel's OOM killer ran in the container's memory cgroup. */
  readonly oomKilled: boolean
  readonly wallMs: number
}

async function runcCommand(runc: string, stateRoot: string, args: string[]): Promise<void> {
  await execFileAsync(runc, ['--root', stateRoot, ...args], { timeout: 15_000 })
}

async function oomKills(dir: string | undefined): Promise<number> {
  if (!dir) return 0
  try {
    const text = await readFile(`${dir}/memory.oom_control`, 'utf8')
    return Number(/oom_kill (\d+)/.exec(text)?.[1] ?? 0)
  } catch {
    return 0
  }
}

/**
 * Runs the bundle's container to its end (or kill), then deletes it.
 * @returns how it ended; never throws for the container's own failure (the caller types it).
 */
export async function runContainer(init: ContainerRunInit): Promise<ContainerExit> {
  const runc = init.runc ?? 'runc'
  const t0 = performance.now()
  // Not the daemon's NOTIFY_SOCKET (executor-node.service is Type=notify, NotifyAccess=all):
  // given one, `runc run` proxies it into the container, waits for the container's READY=1 and
  // never returns (apps/executor-node/test/oci-unit.test.ts, under a real systemd).
  const { NOTIFY_SOCKET: _, ...env } = process.env
  const child = spawn(runc, ['--root', init.stateRoot, 'run', '--bundle', init.bundle, init.id], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  })
  init.guard?.watch(child.pid)
  const out: Buffer[] = []
  let outBytes = 0
  const err: Buffer[] = []
  let errBytes = 0
  let stderrDropped = 0
  let killed: ContainerExit['killed']
  let oomKilled = false
  const kill = (why: NonNullable<ContainerExit['killed']>) => {
    if (killed) return
    killed = why
    // runc forwards nothing once we ask the container itself to die: SIGKILL its init.
    void runcCommand(runc, init.stateRoot, ['kill', init.id, 'KILL']).catch(() => {
      child.kill('SIGKILL')
    })
  }
  child.stdout.on('data', (chunk: Buffer) => {
    outBytes += chunk.length
    if (outBytes > init.stdoutLimitBytes) {
      kill('stdout-limit')
      return
    }
    out.push(chunk)
  })
  child.stderr.on('data', (chunk: Buffer) => {
    const room = init.stderrLimitBytes - errBytes
    if (room <= 0) {
      stderrDropped += chunk.length
      return
    }
    err.push(chunk.subarray(0, room))
    errBytes += Math.min(room, chunk.length)
    stderrDropped += Math.max(0, chunk.length - room)
  })
  const timer = setTimeout(() => kill('time'), init.timeLimitMs)
  const onAbort = () => kill('aborted')
  init.signal?.addEventListener('abort', onAbort, { once: true })
  if (init.signal?.aborted) onAbort()
  let exit: { code: number | null; signal: NodeJS.Signals | null }
  try {
    exit = await new Promise((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (code, signal) => resolve({ code, signal }))
    })
    // runc removes the cgroup as the container ends, so its OOM count is often gone already:
    // a SIGKILL (exit 137) the host did not send is the kernel's OOM killer.
    oomKilled =
      (await oomKills(init.memoryCgroupDir)) > 0 || (exit.code === 137 && killed === undefined)
  } finally {
    clearTimeout(timer)
    init.signal?.removeEventListener('abort', onAbort)
    await runcCommand(runc, init.stateRoot, ['delete', '--force', init.id]).catch(() => {})
    init.guard?.unwatch(child.pid)
  }
  return {
    ...exit,
    stdout: Buffer.concat(out),
    stderr: Buffer.concat(err),
    stderrDropped,
    killed,
    oomKilled,
    wallMs: performance.now() - t0,
  }
}

/** The container ids runc still knows under a state root (empty when none). */
export async function listContainers(runc: string, stateRoot: string): Promise<string[]> {
  try {
    const { stdout } = await execFileAsync(runc, ['--root', stateRoot, 'list', '--quiet'], {
      timeout: 15_000,
    })
    return stdout.split('\n').filter((l) => l.length > 0)
  } catch {
    return []
  }
}
