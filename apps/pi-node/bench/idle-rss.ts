/**
 * Idle memory of `pi-node serve` (helia + libp2p + keyguard + the ops port with the status
 * page), against baselines measured in the same run: a bare Node process, and `serve` without
 * the ops port. A real anvil, a fresh node (software sealer), one capsule sealed; after start
 * the daemon idles, then its resident set (VmRSS, /proc) is read, and once more after a status
 * page view and a metrics scrape. Goal (issue #20): ≤ 150 MB on a Pi 4.
 *
 *   node bench/idle-rss.ts [idle seconds, default 15]      (after `pnpm build`)
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startAnvil } from '@digicap/contracts/testing'

const idleMs = Number(process.argv[2] ?? 15) * 1000
const CLI = fileURLToPath(new URL('../bin/pi-node.js', import.meta.url))
const GOAL_MB = 150
/** The node flags of the binary's `#!/usr/bin/env -S node …` line. */
const SHEBANG_FLAGS = (readFileSync(CLI, 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(3)

const rssMb = (pid: number): number => {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))
  return Number(line?.split(/\s+/)[1]) / 1024
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function daemon(args: string[], env: NodeJS.ProcessEnv) {
  // With the binary's own node flags (its shebang: --max-semi-space-size=2), as installed.
  const child = spawn(process.execPath, [...SHEBANG_FLAGS, CLI, 'serve', '--json', ...args], {
    env,
  })
  let out = ''
  child.stdout.on('data', (d) => {
    out += d
  })
  child.stderr.resume()
  while (!out.includes('\n')) {
    if (child.exitCode !== null) throw new Error('serve exited')
    await sleep(100)
  }
  return { child, ready: JSON.parse(out.split('\n')[0] as string) }
}

async function stop(child: ChildProcess) {
  const closed = new Promise((r) => child.once('close', r))
  child.kill('SIGTERM')
  await closed
}

const tmp = mkdtempSync(join(tmpdir(), 'pi-node-rss-'))
const anvil = await startAnvil()
try {
  const env = {
    PATH: process.env.PATH,
    HOME: tmp,
    DIGICAP_DATA_DIR: join(tmp, 'pi'),
    DIGICAP_RPC_URL: anvil.rpcUrl,
  }
  const cli = (args: string[]) =>
    execFileSync(process.execPath, [CLI, ...args], { env, stdio: 'pipe' })
  cli([
    'init',
    '--deploy',
    '--sealer',
    'software',
    '--allow-insecure-sealer',
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
  ])
  writeFileSync(join(tmp, 'data.bin'), Buffer.alloc(100_000, 7))
  cli(['seal', join(tmp, 'data.bin'), '--policy', 'maxRuns(3)'])

  const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'])
  await sleep(1000)
  const bareMb = rssMb(bare.pid as number)
  bare.kill()

  const plain = await daemon([], env)
  await sleep(idleMs)
  const plainMb = rssMb(plain.child.pid as number)
  await stop(plain.child)

  const full = await daemon(['--ops-port', '0'], env)
  await sleep(idleMs)
  const idleMb = rssMb(full.child.pid as number)
  const token = readFileSync(join(tmp, 'pi', 'status-token'), 'utf8').trim()
  const url = full.ready.ops.url as string
  for (let i = 0; i < 5; i++) {
    await fetch(`${url}/status`, { headers: { authorization: `Bearer ${token}` } }).then((r) =>
      r.text(),
    )
    await fetch(`${url}/metrics`).then((r) => r.text())
  }
  await sleep(2000)
  const viewedMb = rssMb(full.child.pid as number)
  await stop(full.child)

  const row = (what: string, mb: number) =>
    `${what.padEnd(52)} ${mb.toFixed(1).padStart(7)} MB  (${(mb / bareMb).toFixed(1)}× bare node)`
  console.log(
    `pi-node serve idle RSS after ${idleMs / 1000} s (node ${process.versions.node} ${SHEBANG_FLAGS.join(' ')}, ${process.arch})`,
  )
  console.log(row('bare node (setInterval), baseline', bareMb))
  console.log(row('serve: helia + libp2p + keyguard', plainMb))
  console.log(row('serve --ops-port: + metrics + status page, idle', idleMb))
  console.log(row('  after 5 status page views and 5 scrapes', viewedMb))
  console.log(
    `ops port adds ${(idleMb - plainMb).toFixed(1)} MB; goal ≤ ${GOAL_MB} MB: ${Math.max(idleMb, viewedMb) <= GOAL_MB ? 'met' : 'NOT met'}`,
  )
} finally {
  await anvil.stop()
  rmSync(tmp, { recursive: true, force: true })
}
