/**
 * Runs a command and reports its wall time and its peak RSS. For a Node child, an `--import`
 * hook prints the child's own peak at exit: `VmHWM` from /proc/self/status, not
 * `process.resourceUsage().maxRSS`. On Linux a forked child's `ru_maxrss` keeps the parent's
 * RSS at fork time across exec, so a child spawned by this (helia-holding, 1 GiB) process
 * reported the parent's size as its own. Children it spawns (pi-node's solc compile) are
 * measured apart by /proc polling of the process tree.
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

const HOOK = `data:text/javascript,${encodeURIComponent(
  "import { readFileSync } from 'node:fs'; const peak = () => { try { return Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) } catch { return process.resourceUsage().maxRSS } }; process.on('exit', () => { const c = process.cpuUsage(); process.stderr.write('\\nMAXRSS ' + peak() + '\\nCPUMS ' + (c.user + c.system) / 1000 + '\\nSYSMS ' + c.system / 1000 + '\\n') })",
)}`

export interface Measured {
  ms: number
  /** Peak RSS of the process itself, MiB. */
  rssMiB: number
  /** CPU time (user + system) of a Node process itself, ms (0 for a shell command). */
  cpuMs: number
  /** The part of cpuMs spent in the kernel (page cache copies, reclaim, file system). */
  sysMs: number
  /** Peak of the sum of RSS over the process and its descendants (sampled every 20 ms), MiB. */
  treeMiB: number
  stdout: string
  stderr: string
  code: number | null
}

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : 0
  } catch {
    return 0
  }
}

function treeKiB(root: number): number {
  const parents = new Map<number, number>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      parents.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
    } catch {}
  }
  let sum = 0
  const walk = (pid: number) => {
    sum += rssKiB(pid)
    for (const [child, parent] of parents) if (parent === pid) walk(child)
  }
  walk(root)
  return sum
}

/** Runs `node <args>` (with the RSS hook) and measures it. */
export function measureNode(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, ['--import', HOOK, ...args], { env })
    let stdout = ''
    let stderr = ''
    let tree = 0
    const poll = setInterval(() => {
      if (child.pid) tree = Math.max(tree, treeKiB(child.pid))
    }, 20)
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code) => {
      clearInterval(poll)
      const ms = performance.now() - t0
      const own = Number(/\nMAXRSS (\d+)/.exec(stderr)?.[1] ?? 0) / 1024
      const cpuMs = Number(/\nCPUMS ([\d.]+)/.exec(stderr)?.[1] ?? 0)
      const sysMs = Number(/\nSYSMS ([\d.]+)/.exec(stderr)?.[1] ?? 0)
      resolve({
        ms,
        rssMiB: own,
        cpuMs,
        sysMs,
        treeMiB: Math.max(tree / 1024, own),
        stdout,
        stderr,
        code,
      })
    })
  })
}

/** Runs a shell command under /usr/bin/time: wall ms and peak RSS. */
export function measureShell(command: string): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn('/usr/bin/time', ['-f', 'MAXRSS %M', 'sh', '-c', command])
    let stderr = ''
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code) => {
      const rss = Number(/MAXRSS (\d+)/.exec(stderr)?.[1] ?? 0) / 1024
      resolve({
        ms: performance.now() - t0,
        rssMiB: rss,
        cpuMs: 0,
        sysMs: 0,
        treeMiB: rss,
        stdout: '',
        stderr,
        code,
      })
    })
  })
}
