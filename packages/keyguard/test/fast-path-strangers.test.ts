/**
 * Strangers are cut at the connection: a peer that is not a registered executor's and keeps
 * opening fast-path streams has its connection closed and is refused at the handshake for the
 * cooldown; fresh peer ids from the same host add up to the host's budget, after which every
 * stranger of that host is refused. The registered executor, on the same host (everything here
 * is 127.0.0.1), keeps its connection, is served throughout, and may reconnect while its host
 * is refused. Real anvil, real libp2p nodes on loopback, the keyguard node's gater is the guard's.
 */
import {
  type AccessResponse,
  addressToBytes,
  type ConnectionGuard,
  type CutReason,
  createConnectionGuard,
  fastPathProtocol,
  request,
  signAccessRequest,
} from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getBytes, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard, type Keyguard } from '../src/index.ts'
import { type FloodTarget, strangerRequest } from './helpers/flood.ts'
import {
  type Chain,
  chainClientFor,
  createNode,
  type ExecutorSide,
  executorSide,
  type KeyguardParts,
  keyguardParts,
  quietLogger,
  registerCapsule,
  registerExecutor,
  setupChain,
  storeKey,
  until,
} from './helpers/world.ts'

/** Small budgets, so that a handful of requests trips them; a cooldown a test can wait out. */
const PER_PEER = 6
const PER_HOST = 14
const COOLDOWN_MS = 4000

let chain: Chain
let kgNode: Libp2p
let exec: ExecutorSide
let parts: KeyguardParts
let capsuleId: string
let keyguard: Keyguard
let guard: ConnectionGuard
let target: FloodTarget
const cuts: { peer: string; reason: CutReason; refused: boolean }[] = []
const strangers: Libp2p[] = []
let granted = 0
let audited = 0

beforeAll(async () => {
  guard = createConnectionGuard({
    perPeer: { capacity: PER_PEER, refillPerSecond: 0.5 },
    perHost: { capacity: PER_HOST, refillPerSecond: 1 },
    cooldownMs: COOLDOWN_MS,
  })({ onCut: (e) => cuts.push(e) })
  ;[chain, kgNode, exec] = await Promise.all([
    setupChain(),
    createNode({ connectionGater: guard.gater }),
    executorSide(),
  ])
  await registerExecutor(chain, chain.executor, exec.node)
  parts = await keyguardParts()
  capsuleId = await registerCapsule(chain, kgNode)
  await storeKey(parts, capsuleId, randomBytes(32))
  keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: 0,
    startBlock: chain.addresses.deployBlock,
    pollIntervalMs: 600_000,
    fastPath: { enabled: true },
  })({ ...parts, chain: chainClientFor(chain), libp2p: kgNode, guard, logger: quietLogger })
  keyguard.events.addEventListener('audit-recorded', () => audited++)
  await keyguard.start()
  await exec.node.peerStore.merge(kgNode.peerId, { multiaddrs: kgNode.getMultiaddrs() })
  target = {
    keyguard: kgNode.peerId,
    capsuleId,
    measurement: chain.measurement,
    domain: {
      chainId: BigInt(chain.addresses.chainId),
      verifyingContract: chain.addresses.accessController as `0x${string}`,
    },
    executor: chain.executor.address,
  }
}, 60_000)

afterAll(async () => {
  await keyguard?.stop()
  await Promise.all([kgNode?.stop(), exec?.stop(), ...strangers.map((s) => s.stop())])
  await chain?.anvil.stop()
  await parts?.cleanup()
})

const outcome = (res: AccessResponse): string =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason}` : res.status

async function executorAsks(): Promise<string> {
  const req = signAccessRequest(
    {
      capsuleId: getBytes(capsuleId),
      executor: addressToBytes(chain.executor.address as `0x${string}`),
      ephemeralKey: getBytes(exec.newEphemeral()),
      measurement: getBytes(chain.measurement),
      jobParamsHash: keccak_256(new Uint8Array(0)),
      fee: 0n,
      nonce: randomBytes(32),
      expiry: BigInt(Math.floor(Date.now() / 1000) + 120),
      jobParams: new Uint8Array(0),
    },
    target.domain,
    getBytes(chain.executor.privateKey),
  )
  const res = await request(exec.node, kgNode.peerId, fastPathProtocol, req, { timeout: 30_000 })
  // The next run of the capsule waits for this one's audit: let it land.
  if (res.status === 'granted') {
    granted++
    await until(() => audited >= granted, 30_000)
  }
  return outcome(res)
}

/** A fresh stranger (new key, new peer id) on this host, which knows the keyguard's address. */
async function stranger(): Promise<Libp2p> {
  const node = await createNode()
  strangers.push(node)
  await node.peerStore.merge(kgNode.peerId, { multiaddrs: kgNode.getMultiaddrs() })
  return node
}

/** Sends stranger requests back to back until an exchange fails; returns the answers got. */
async function floodUntilCut(node: Libp2p, max = 100): Promise<string[]> {
  const answers: string[] = []
  for (let i = 0; i < max; i++) {
    try {
      answers.push(
        outcome(await request(node, kgNode.peerId, fastPathProtocol, strangerRequest(target))),
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
    return outcome(await request(node, kgNode.peerId, fastPathProtocol, strangerRequest(target)))
  } catch {
    return 'failed'
  }
}

/** Lets libp2p's own per-host limit on new inbound connections (5 a second) refill. */
const pause = (ms = 1100) => new Promise((r) => setTimeout(r, ms))

describe('fast path: strangers are cut at the connection', () => {
  it('cuts a flooding stranger, refuses it for the cooldown and serves the registered executor on the same host', async () => {
    expect(await executorAsks()).toBe('granted')
    const executorConnection = exec.node.getConnections(kgNode.peerId)[0]?.id
    expect(executorConnection).toBeDefined()

    const flooder = await stranger()
    const answers = await floodUntilCut(flooder)
    // A typed answer for each stream within its budget, then the connection is closed.
    expect(answers.length).toBeGreaterThanOrEqual(PER_PEER - 1)
    expect(answers.length).toBeLessThanOrEqual(PER_PEER + 2)
    expect(new Set(answers)).toEqual(new Set(['policy-denied:EXECUTOR_NOT_REGISTERED']))
    expect(cuts.at(-1)).toMatchObject({ peer: flooder.peerId.toString(), refused: false })
    await until(() => kgNode.getConnections(flooder.peerId).length === 0)

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
    expect(exec.node.getConnections(kgNode.peerId).map((c) => c.id)).toContain(executorConnection)
    await expect(keyguard.status()).resolves.toMatchObject({
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
    await exec.node.hangUp(kgNode.peerId)
    await until(() => kgNode.getConnections(exec.node.peerId).length === 0)
    await pause()
    expect(await tryOnce(await stranger())).toBe('failed')
    expect(cuts.at(-1)).toMatchObject({ reason: 'host-cooling', refused: true })
    // It reconnects (known by its peer id after the handshake) and is served, twice.
    expect(await executorAsks()).toBe('granted')
    expect(kgNode.getConnections(exec.node.peerId).length).toBeGreaterThan(0)
    expect(await executorAsks()).toBe('granted')
    expect(cuts.some((c) => c.peer === exec.node.peerId.toString())).toBe(false)
  }, 90_000)
})
