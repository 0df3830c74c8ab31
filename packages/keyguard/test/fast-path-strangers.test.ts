/**
 * Strangers are cut at the connection: a peer that is not a registered executor's and keeps
 * opening fast-path streams has its connection closed and is refused at the handshake for the
 * cooldown; fresh peer ids from the same host add up to the host's budget, after which every
 * stranger of that host is refused. The registered executor, on the same host (everything here
 * is 127.0.0.1), keeps its connection, is served throughout, and may reconnect while its host
 * is refused. Real anvil, real libp2p nodes on loopback, the keyguard node's gater is the guard's.
 */
import {
  type ConnectionGuard,
  type CutReason,
  createConnectionGuard,
  fastPathProtocol,
  request,
} from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { outcome } from './helpers/access-request.ts'
import { type FloodTarget, floodTargetOf, strangerRequest } from './helpers/flood.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { createNode, until } from './helpers/world.ts'

/** Small budgets, so that a handful of requests trips them; a cooldown a test can wait out. */
const PER_PEER = 6
const PER_HOST = 14
const COOLDOWN_MS = 4000

let w: KeyguardWorld
let guard: ConnectionGuard
let target: FloodTarget
const cuts: { peer: string; reason: CutReason; refused: boolean }[] = []
let granted = 0
const audited = () => w.events.filter((e) => e.type === 'audit-recorded').length

beforeAll(async () => {
  guard = createConnectionGuard({
    perPeer: { capacity: PER_PEER, refillPerSecond: 0.5 },
    perHost: { capacity: PER_HOST, refillPerSecond: 1 },
    cooldownMs: COOLDOWN_MS,
  })({ onCut: (e) => cuts.push(e) })
  w = await keyguardWorld({
    connectionGater: guard.gater,
    guard,
    keyguard: { pollIntervalMs: 600_000, fastPath: { enabled: true } },
    events: ['audit-recorded'],
  })
  target = floodTargetOf(w)
}, 60_000)

afterAll(() => w?.stop())

async function executorAsks(): Promise<string> {
  const res = await w.ask(w.signed(), undefined, { timeout: 30_000 })
  // The next run of the capsule waits for this one's audit: let it land.
  if (res.status === 'granted') {
    granted++
    await until(() => audited() >= granted, 30_000)
  }
  return outcome(res)
}

/** A fresh stranger (new key, new peer id) on this host, which knows the keyguard's address. */
async function stranger(): Promise<Libp2p> {
  const node = await createNode()
  w.defer('stranger', () => node.stop())
  await node.peerStore.merge(w.kgNode.peerId, { multiaddrs: w.kgNode.getMultiaddrs() })
  return node
}

/** Sends stranger requests back to back until an exchange fails; returns the answers got. */
async function floodUntilCut(node: Libp2p, max = 100): Promise<string[]> {
  const answers: string[] = []
  for (let i = 0; i < max; i++) {
    try {
      answers.push(
        outcome(await request(node, w.kgNode.peerId, fastPathProtocol, strangerRequest(target))),
      )
    } catch {
      return answers
    }
  }
  throw new Error(`not cut after ${max} requests`)
}

/** One stranger exchange: its answer, or `failed` when the connection is refused or cut. */
async function tryOnce(node: Libp2p): Promise<string> {
  try {
    return outcome(await request(node, w.kgNode.peerId, fastPathProtocol, strangerRequest(target)))
  } catch {
    return 'failed'
  }
}

/** Lets libp2p's own per-host limit on new inbound connections (5 a second) refill. */
const pause = (ms = 1100) => new Promise((r) => setTimeout(r, ms))

describe('fast path: strangers are cut at the connection', () => {
  it('cuts a flooding stranger, refuses it for the cooldown and serves the registered executor on the same host', async () => {
    expect(await executorAsks()).toBe('granted')
    const executorConnection = w.exec.node.getConnections(w.kgNode.peerId)[0]?.id
    expect(executorConnection).toBeDefined()

    const flooder = await stranger()
    const answers = await floodUntilCut(flooder)
    // A typed answer for each stream within its budget, then the connection is closed.
    expect(answers.length).toBeGreaterThanOrEqual(PER_PEER - 1)
    expect(answers.length).toBeLessThanOrEqual(PER_PEER + 2)
    expect(new Set(answers)).toEqual(new Set(['policy-denied:EXECUTOR_NOT_REGISTERED']))
    expect(cuts.at(-1)).toMatchObject({ peer: flooder.peerId.toString(), refused: false })
    await until(() => w.kgNode.getConnections(flooder.peerId).length === 0)

    // Its reconnects are refused at the handshake, before any stream.
    await pause()
    const refusedBefore = guard.stats().refused
    expect(await tryOnce(flooder)).toBe('failed')
    expect(guard.stats().refused).toBe(refusedBefore + 1)
    expect(cuts.at(-1)).toMatchObject({ reason: 'peer-cooling', refused: true })

    // Fresh peer ids of the same host add up to the host's budget.
    for (let i = 0; i < 6 && !cuts.some((c) => c.reason === 'host-budget'); i++) {
      await pause(300)
      await floodUntilCut(await stranger())
    }
    expect(cuts.some((c) => c.reason === 'host-budget')).toBe(true)
    await pause()
    const newcomer = await stranger()
    expect(await tryOnce(newcomer)).toBe('failed')
    expect(cuts.at(-1)).toMatchObject({
      peer: newcomer.peerId.toString(),
      reason: 'host-cooling',
      refused: true,
    })

    // The registered executor, same host, same connection, served all along.
    expect(await executorAsks()).toBe('granted')
    expect(w.exec.node.getConnections(w.kgNode.peerId).map((c) => c.id)).toContain(
      executorConnection,
    )
    await expect(w.keyguard.status()).resolves.toMatchObject({
      fastPath: { strangers: { cut: expect.any(Number) } },
    })

    // Refused for the cooldown only: after it, a typed answer again.
    await pause(COOLDOWN_MS + 500)
    expect(await tryOnce(flooder)).toBe('policy-denied:EXECUTOR_NOT_REGISTERED')
  }, 90_000)

  it('does not lock out a registered executor that reconnects while its host is refused', async () => {
    await pause(COOLDOWN_MS + 500)
    const before = cuts.length
    for (let i = 0; i < 8 && !cuts.slice(before).some((c) => c.reason === 'host-budget'); i++) {
      await pause(300)
      await floodUntilCut(await stranger())
    }
    expect(cuts.slice(before).some((c) => c.reason === 'host-budget')).toBe(true)
    // The executor hangs up; its host is in the cooldown.
    await w.exec.node.hangUp(w.kgNode.peerId)
    await until(() => w.kgNode.getConnections(w.exec.node.peerId).length === 0)
    await pause()
    expect(await tryOnce(await stranger())).toBe('failed')
    expect(cuts.at(-1)).toMatchObject({ reason: 'host-cooling', refused: true })
    // It reconnects (known by its peer id after the handshake) and is served, twice.
    expect(await executorAsks()).toBe('granted')
    expect(w.kgNode.getConnections(w.exec.node.peerId).length).toBeGreaterThan(0)
    expect(await executorAsks()).toBe('granted')
    expect(cuts.some((c) => c.peer === w.exec.node.peerId.toString())).toBe(false)
  }, 90_000)
})
