/**
 * A watchdog for what the demo starts. The demo stops its children itself when it ends, fails
 * or gets SIGINT/SIGTERM; nothing of it runs when it is killed (SIGKILL) or aborts (V8 out of
 * memory), and its nodes (anvil, swtpm, `pi-node serve`, `executor-node serve`, each in its own
 * process group) then ran on, with the temp folder left behind. The reaper is a small process
 * of its own, told each pid and folder over a pipe; when the pipe closes without a release
 * (the demo died, the kernel closed its end), it stops them: SIGTERM to each process group and
 * process, SIGKILL 1.5 s later to what is left, then removes the folders.
 */
import { spawn } from 'node:child_process'

/** The reaper's code, run by `node -e` (plain JavaScript; it must not depend on the demo). */
const REAPER = `
const { rmSync } = require('node:fs')
const pids = new Set()
const dirs = new Set()
let buffered = ''
let released = false
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  buffered += chunk
  const lines = buffered.split('\\n')
  buffered = lines.pop()
  for (const line of lines) {
    const [verb, ...rest] = line.split(' ')
    const arg = rest.join(' ')
    if (verb === 'pid' && Number.isSafeInteger(Number(arg)) && Number(arg) > 1) pids.add(Number(arg))
    else if (verb === 'dir' && arg.startsWith('/')) dirs.add(arg)
    else if (verb === 'release') released = true
  }
})
const signal = (sig) => {
  for (const pid of pids) {
    for (const target of [-pid, pid]) {
      try { process.kill(target, sig) } catch {}
    }
  }
}
process.stdin.on('end', () => {
  if (released) process.exit(0)
  signal('SIGTERM')
  setTimeout(() => {
    signal('SIGKILL')
    for (const dir of dirs) {
      try { rmSync(dir, { recursive: true, force: true }) } catch {}
    }
    process.exit(0)
  }, 1500)
})
`

/** What the demo tells its reaper. */
export interface Reaper {
  /** Stop `pid` (and its process group) if the demo dies first. */
  watch(pid: number): void
  /** Remove `dir` if the demo dies first. */
  removeOnDeath(dir: string): void
  /** The demo stopped everything itself: the reaper leaves without touching anything. */
  release(): void
  /** The reaper's own pid (tests). */
  readonly pid: number | undefined
}

/** Starts the reaper: a detached `node` process that outlives the demo by 1.5 s at most. */
export function startReaper(): Reaper {
  const child = spawn(process.execPath, ['-e', REAPER], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  })
  // Neither the child nor the pipe keeps the demo's event loop alive.
  child.unref()
  const stdin = child.stdin as NonNullable<typeof child.stdin> & { unref?: () => void }
  stdin.unref?.()
  // A reaper that died (or could not start) must not crash the demo on a write.
  stdin.on('error', () => {})
  child.on('error', () => {})
  const tell = (line: string) => {
    if (!stdin.destroyed) stdin.write(`${line}\n`)
  }
  return {
    watch: (pid) => tell(`pid ${pid}`),
    removeOnDeath: (dir) => tell(`dir ${dir}`),
    release() {
      tell('release')
      stdin.end()
    },
    pid: child.pid,
  }
}
