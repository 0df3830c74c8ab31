/**
 * End-to-end latency per stage (fetch, verify, grant, release, open, run, deliver, cleanup)
 * for a 1 MiB and a 100 MiB capsule, chain path and fast path, on real parts: anvil, two
 * helia/libp2p nodes on loopback, a keyguard with a software sealer. The baseline for the
 * fetch is a raw loopback TCP transfer of the same bytes, measured in the same run.
 *
 * Run: pnpm bench (from packages/executor), or node bench/e2e.ts
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'ethers'
import type { RunTimings } from '../src/index.ts'
import { makeCapsule, setupWorld } from '../test/helpers/world.ts'

async function tcpBaseline(bytes: Uint8Array): Promise<number> {
  const server = createServer((sock) => {
    sock.end(bytes)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const t0 = performance.now()
  const sock = connect(port, '127.0.0.1')
  let n = 0
  for await (const c of sock) n += (c as Buffer).length
  const ms = performance.now() - t0
  server.close()
  if (n !== bytes.length) throw new Error('baseline short read')
  return ms
}

const fmt = (ms: number): string => ms.toFixed(1).padStart(8)
const STAGES: (keyof RunTimings)[] = [
  'fetch',
  'verify',
  'grant',
  'release',
  'open',
  'run',
  'deliver',
  'cleanup',
]

const tmpRoot = await mkdtemp(join(tmpdir(), 'exec-bench-'))
const w = await setupWorld({ tmpRoot, executor: { maxReleaseWaitMs: 60_000 } })
try {
  console.log(
    `size     path  ${STAGES.map((s) => s.padStart(8)).join('')}     total  tcp-base  fetch/tcp`,
  )
  for (const size of [1 << 20, 100 << 20]) {
    const plaintext = randomBytes(size)
    for (const fast of [false, true]) {
      const capsule = await makeCapsule(w, { plaintext, runtime: { kind: 'data' } })
      const base = await tcpBaseline(capsule.bytes)
      const t0 = performance.now()
      const res = await w.executor.runCapsule(capsule.cid, { fast })
      const total = performance.now() - t0
      const row = STAGES.map((s) => fmt(res.timings[s])).join('')
      console.log(
        `${`${size >> 20} MiB`.padEnd(8)} ${res.path.padEnd(5)} ${row}  ${fmt(total)}  ${fmt(base)}  ${(res.timings.fetch / base).toFixed(1).padStart(8)}x`,
      )
    }
  }
  console.log('(ms; verify is part of fetch; chain-path grant includes mining on anvil)')
} finally {
  await w.stop()
  await rm(tmpRoot, { recursive: true, force: true })
}
