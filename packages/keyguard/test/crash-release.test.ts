import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { hexlify, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReleaseJournal } from '../src/index.ts'
import type { Swtpm } from '../src/testing.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { registerCapsule, requestAccess, storeKey } from './helpers/world.ts'

const CHILD = fileURLToPath(new URL('./fixtures/keyguard-child.ts', import.meta.url))

let w: KeyguardWorld

beforeAll(async () => {
  // The keyguards are child processes on the world's data dir and swtpm.
  w = await keyguardWorld({ swtpm: true, capsules: 0, keyguard: false })
}, 60_000)

afterAll(() => w?.stop())

interface Child {
  proc: ChildProcess
  lines: Record<string, unknown>[]
  waitFor(pred: (l: Record<string, unknown>) => boolean, ms?: number): Promise<void>
  exited: Promise<unknown>
}

function startChild(): Child {
  const config = {
    dataDir: w.parts.dir,
    tcti: (w.swtpm as Swtpm).tcti,
    rpcUrl: w.chain.anvil.rpcUrl,
    chainId: w.chain.addresses.chainId,
    addresses: w.chain.addresses,
    ownerKey: w.chain.owner.privateKey,
    executor: {
      peerId: Buffer.from(w.exec.node.peerId.toMultihash().bytes).toString('hex'),
      addrs: w.exec.node.getMultiaddrs().map((a) => a.toString()),
    },
  }
  const proc = spawn(process.execPath, ['--no-warnings', CHILD, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // A failing test must not leave a keyguard holding the swtpm.
  w.defer('keyguard child', () => proc.kill('SIGKILL'))
  const lines: Record<string, unknown>[] = []
  let buf = ''
  let err = ''
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    let i = buf.indexOf('\n')
    while (i >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)))
      buf = buf.slice(i + 1)
      i = buf.indexOf('\n')
    }
  })
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = new Promise((r) => proc.once('exit', (code, signal) => r(signal ?? code)))
  return {
    proc,
    lines,
    exited,
    async waitFor(pred, ms = 20_000) {
      const deadline = Date.now() + ms
      while (!lines.some(pred)) {
        if (proc.exitCode !== null) throw new Error(`child exited: ${err.slice(0, 2000)}`)
        if (Date.now() > deadline) throw new Error(`child timed out: ${err.slice(0, 2000)}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    },
  }
}

describe('crash between unwrap and acknowledgement', () => {
  it('re-serves the grant to the same key after kill -9 and restart, exactly once', async () => {
    const capsuleId = await registerCapsule(w.chain, w.kgNode)
    const dataKey = randomBytes(32)
    await storeKey(w.parts, capsuleId, dataKey)
    const eph = w.exec.newEphemeral()
    const grantId = await requestAccess(w.chain, capsuleId, eph)

    // Child 1: killed when its KeyRelease reaches the executor, before the ack goes back.
    let first: Child | undefined
    let killed = false
    w.exec.beforeAck = async () => {
      if (killed || first === undefined) return
      killed = true
      first.proc.kill('SIGKILL')
      await first.exited
    }
    first = startChild()
    expect(await first.exited).toBe('SIGKILL')
    expect(first.lines.some((l) => l.type === 'unwrapped' && l.grantId === grantId)).toBe(true)
    expect(first.lines.some((l) => l.type === 'released')).toBe(false)
    const journal = await createReleaseJournal(join(w.parts.dir, 'journal'))
    expect((await journal.get(grantId))?.state).toBe('begun')
    w.exec.beforeAck = undefined

    // Child 2: resumes the journaled grant, same key, acked, completed.
    const second = startChild()
    await second.waitFor((l) => l.type === 'released' && l.grantId === grantId)
    expect(second.lines.find((l) => l.type === 'grant-accepted')).toMatchObject({
      grantId,
      resumed: true,
    })
    second.proc.kill('SIGKILL')
    await second.exited
    const entry = await journal.get(grantId)
    expect(entry?.state).toBe('completed')
    expect(hexlify(entry?.executorKey ?? new Uint8Array())).toBe(eph)
    expect(w.exec.received.get(grantId)).toEqual(dataKey)
    const releases = w.exec.releases.filter((r) => hexlify(r.grantId) === grantId).length
    expect(releases).toBe(2)

    // Child 3: nothing left to serve.
    const third = startChild()
    await third.waitFor((l) => l.type === 'settled')
    third.proc.kill('SIGKILL')
    await third.exited
    expect(
      third.lines.some(
        (l) => 'grantId' in l && l.grantId === grantId && l.type !== 'grant-refused',
      ),
    ).toBe(false)
    expect(w.exec.releases.filter((r) => hexlify(r.grantId) === grantId).length).toBe(releases)
  }, 90_000)
})
