/**
 * The executor feed's cursor survives a kill -9: a real keyguard process (software sealer, real
 * anvil, real libp2p) learns executor A from its registration event and is killed with SIGKILL;
 * executor B registers while it is down, 300 blocks later. The restarted keyguard must resume
 * near its saved cursor (not from the deployment block: on the old code, whose cursor lived in
 * memory, it re-read from `startBlock`), must not miss B's event, and must serve both A and B on
 * the fast path with no NodeRegistry lookup.
 */
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fastPathProtocol, request } from '@digicap/protocol'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { type ExecutorSide, registerCapsule, registerExecutor, storeKey } from './helpers/world.ts'

const CHILD = fileURLToPath(new URL('./fixtures/feed-child.ts', import.meta.url))
type Line = Record<string, unknown>

let w: KeyguardWorld
let execA: ExecutorSide
let execB: ExecutorSide
let capsuleId: string

beforeAll(async () => {
  // The keyguard is a child process on the world's data dir; A and B register during the test.
  w = await keyguardWorld({
    executors: 2,
    registerExecutor: false,
    capsules: 0,
    keyguard: false,
  })
  ;[execA, execB] = w.executors as [ExecutorSide, ExecutorSide]
  capsuleId = await registerCapsule(w.chain, execA.node)
  await storeKey(w.parts, capsuleId, randomBytes(32))
  // A history longer than the re-read margin (64 blocks), so a resume is told from a replay.
  await w.chain.anvil.provider.send('anvil_mine', ['0x12c'])
}, 60_000)

afterAll(() => w?.stop())

function startChild() {
  const config = {
    dataDir: w.parts.dir,
    rpcUrl: w.chain.anvil.rpcUrl,
    chainId: w.chain.addresses.chainId,
    addresses: w.chain.addresses,
    ownerKey: w.chain.owner.privateKey,
  }
  const proc = spawn(process.execPath, ['--no-warnings', CHILD, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  w.defer('keyguard child', () => proc.kill('SIGKILL'))
  const lines: Line[] = []
  let buf = ''
  let err = ''
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, i)))
      buf = buf.slice(i + 1)
    }
  })
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = new Promise((r) => proc.once('exit', (code, signal) => r(signal ?? code)))
  const waitFor = async (pred: (l: Line) => boolean, ms = 30_000): Promise<Line> => {
    const deadline = Date.now() + ms
    for (;;) {
      const found = lines.find(pred)
      if (found !== undefined) return found
      if (proc.exitCode !== null) throw new Error(`child exited: ${err.slice(0, 2000)}`)
      if (Date.now() > deadline) throw new Error(`child timed out: ${err.slice(0, 2000)}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  return { proc, lines, exited, waitFor }
}

const stateFile = () => join(w.parts.dir, 'executor-feed.json')
const savedState = async (): Promise<{ next: number; executors: [string, string][] }> => {
  try {
    return JSON.parse(await readFile(stateFile(), 'utf8'))
  } catch {
    return { next: 0, executors: [] }
  }
}

async function ask(side: ExecutorSide, wallet: Wallet, started: Line) {
  const peer = peerIdFromString(started.peerId as string)
  await side.node.peerStore.merge(peer, {
    multiaddrs: (started.addrs as string[]).map((a) => multiaddr(a)),
  })
  const req = w.signed({ capsuleId, signer: wallet, side })
  return request(side.node, peer, fastPathProtocol, req, { timeout: 30_000 })
}

describe('executor feed cursor across kill -9', () => {
  it('resumes from its saved cursor, misses no registration, and needs no lookup', async () => {
    const first = startChild()
    await first.waitFor((l) => l.type === 'executors-synced')
    await registerExecutor(w.chain, w.chain.executor, execA.node)
    // A's event is read and saved with the cursor past it.
    const deadline = Date.now() + 30_000
    while (!(await savedState()).executors.some(([a]) => a === w.chain.executor.address)) {
      if (Date.now() > deadline) throw new Error('executor A never saved')
      await new Promise((r) => setTimeout(r, 50))
    }
    const before = await savedState()
    first.proc.kill('SIGKILL')
    expect(await first.exited).toBe('SIGKILL')

    // While the keyguard is down: 300 blocks, then B registers.
    await w.chain.anvil.provider.send('anvil_mine', ['0x12c'])
    await registerExecutor(w.chain, w.chain.other, execB.node)

    const second = startChild()
    const synced = await second.waitFor((l) => l.type === 'executors-synced')
    const firstRead = second.lines.find((l) => l.type === 'registrations') as Line
    // Resumed 64 blocks before the saved cursor, far past the deployment block.
    expect(firstRead.from).toBe(Math.max(w.chain.addresses.deployBlock, before.next - 64))
    expect(firstRead.from as number).toBeGreaterThan(w.chain.addresses.deployBlock)
    expect(synced.executors).toBe(2)

    const started = await second.waitFor((l) => l.type === 'started')
    expect((await ask(execA, w.chain.executor, started)).status).toBe('granted')
    expect((await ask(execB, w.chain.other, started)).status).toBe('granted')
    expect(second.lines.filter((l) => l.type === 'lookup')).toEqual([])
    const after = await savedState()
    expect(after.executors.map(([a]) => a).sort()).toEqual(
      [w.chain.executor.address, w.chain.other.address].sort(),
    )
    second.proc.kill('SIGKILL')
    await second.exited
  }, 120_000)
})
