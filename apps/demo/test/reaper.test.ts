/**
 * The demo's reaper: when the demo dies without stopping what it started (SIGKILL, an abort),
 * the processes it watched (each a process group, as the demo starts its nodes) are stopped and
 * its temp folder removed; when the demo releases it, nothing is touched. The "demo" here is a
 * real Node process using the real reaper; its nodes are `sleep`s in process groups of their own.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

const reaperModule = fileURLToPath(new URL('../src/reaper.ts', import.meta.url))

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms
  while (performance.now() < end) {
    if (cond()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return cond()
}

const leftovers: number[] = []
afterEach(() => {
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {}
  }
})

/**
 * A stand-in demo: starts the reaper, a node (a shell in its own process group running a
 * `sleep` child, as a CLI runs its own children) and a temp folder, tells the reaper both,
 * prints the pids, then does `then` (`wait`, `release-and-exit`, `abort`).
 */
function standInDemo(dir: string, then: 'wait' | 'release-and-exit' | 'abort'): ChildProcess {
  const script = `
    import { spawn } from 'node:child_process'
    import { startReaper } from ${JSON.stringify(reaperModule)}
    const reaper = startReaper()
    const node = spawn('sh', ['-c', 'sleep 60 & echo $!; wait'], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] })
    node.stdout.once('data', (d) => {
      reaper.watch(node.pid)
      reaper.removeOnDeath(${JSON.stringify(dir)})
      console.log(JSON.stringify({ node: node.pid, grandchild: Number(String(d).trim()), reaper: reaper.pid }))
      if (${JSON.stringify(then)} === 'release-and-exit') { reaper.release(); node.unref(); node.stdout.destroy(); process.exit(0) }
      if (${JSON.stringify(then)} === 'abort') setTimeout(() => process.abort(), 100)
    })
    setInterval(() => {}, 1000)`
  return spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'ignore'],
  })
}

async function pidsOf(demo: ChildProcess) {
  const line = await new Promise<string>((resolve, reject) => {
    demo.stdout?.once('data', (d) => resolve(String(d)))
    demo.once('exit', (code) => reject(new Error(`stand-in demo exited ${code}`)))
  })
  const pids = JSON.parse(line) as { node: number; grandchild: number; reaper: number }
  leftovers.push(pids.node)
  return pids
}

describe('the demo reaper', () => {
  it('stops the watched process groups and removes the folder after the demo is killed -9', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reaper-test-'))
    const demo = standInDemo(dir, 'wait')
    const { node, grandchild, reaper } = await pidsOf(demo)
    expect([alive(node), alive(grandchild), alive(reaper)]).toEqual([true, true, true])
    demo.kill('SIGKILL')
    expect(await until(() => !alive(node) && !alive(grandchild), 5000)).toBe(true)
    expect(await until(() => !existsSync(dir), 5000)).toBe(true)
    expect(await until(() => !alive(reaper), 3000)).toBe(true)
  }, 20_000)

  it('does the same after an abort (what an out-of-memory demo does)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reaper-test-'))
    const demo = standInDemo(dir, 'abort')
    const { node, grandchild } = await pidsOf(demo)
    expect(await until(() => !alive(node) && !alive(grandchild), 6000)).toBe(true)
    expect(await until(() => !existsSync(dir), 5000)).toBe(true)
  }, 20_000)

  it('leaves everything alone once released', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reaper-test-'))
    try {
      const demo = standInDemo(dir, 'release-and-exit')
      const { node, grandchild, reaper } = await pidsOf(demo)
      expect(await until(() => !alive(reaper), 3000)).toBe(true)
      // Well past the reaper's 1.5 s grace: nothing it was told about was touched.
      await new Promise((r) => setTimeout(r, 2000))
      expect([alive(node), alive(grandchild), existsSync(dir)]).toEqual([true, true, true])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 20_000)
})
