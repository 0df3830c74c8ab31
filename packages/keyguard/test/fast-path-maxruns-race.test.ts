/**
 * ADR 0073: `maxRuns(1)` gives one key, whichever path each request takes and in whatever order
 * the chain mines them (real anvil, automine off then `evm_mine`).
 *
 * The review's race: the executor puts a chain-path `requestAccess` in the mempool with a high
 * tip, then asks the fast path. The keyguard's `checkAccess` reads the mined state (no run yet)
 * and releases inline; the chain grant is mined first. Before ADR 0073 the audit then reverted
 * (`AccessDenied` MAX_RUNS_REACHED: run not counted) and the keyguard served the chain grant too:
 * two keys, `runCount` 1. Now the audit is recorded as an overrun (both runs counted) and the
 * keyguard refuses the chain grant (`fast-path-overrun`): one key.
 */
import { decodeHpkeSealed, hpkeOpen } from '@digicap/capsule-core'
import { all, environment, maxRuns } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import {
  getBytes,
  hexlify,
  parseUnits,
  type TransactionReceipt,
  type TransactionResponse,
} from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChainClient, KeyguardEvent } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { registerCapsule, storeKey, until } from './helpers/world.ts'

let w: KeyguardWorld
/** One maxRuns(1) capsule per test. */
const capsules: string[] = []
/** Audits wait for this before they are sent (the third test holds one back). */
let auditGate: Promise<void> = Promise.resolve()
/**
 * Set: the RPC answers the fast path's run reads from a block before the last chain grant (one
 * load-balanced RPC behind another): `checkAccess` allowed, `runCount` one less than the chain's.
 */
let staleRuns = false

beforeAll(async () => {
  w = await keyguardWorld({
    keyguardDialsExecutor: true,
    keyguard: {
      pollIntervalMs: 200,
      fastPath: { enabled: true, maxExpirySeconds: 300 },
    },
    // The keyguard's audits can be held back, to mine a chain grant while one is pending.
    chainClient: (real: ChainClient): ChainClient => {
      const held: ChainClient = Object.create(real)
      held.recordFastPathGrant = async (...args) => {
        await auditGate
        return real.recordFastPathGrant(...args)
      }
      held.checkAccess = async (args) =>
        staleRuns ? { allowed: true, reason: 0 } : real.checkAccess(args)
      held.runCount = async (capsuleId) => {
        const runs = await real.runCount(capsuleId)
        return staleRuns && runs > 0n ? runs - 1n : runs
      }
      return held
    },
    events: [
      'fast-path-granted',
      'audit-recorded',
      'audit-alert',
      'released',
      'grant-refused',
      'grant-held',
      'served-inline',
    ],
    prepare: async (world) => {
      const p = await deployPolicy(
        world.chain.owner,
        all(environment(world.chain.measurement), maxRuns(1)),
        { nodeRegistry: world.chain.addresses.nodeRegistry },
      )
      for (let i = 0; i < 4; i++) {
        const id = await registerCapsule(world.chain, world.kgNode, p.address)
        await storeKey(world.parts, id, world.dataKeys.get(world.capsuleId) as Uint8Array)
        capsules.push(id)
      }
    },
  })
}, 90_000)

afterAll(async () => {
  await w?.chain.anvil.provider.send('evm_setAutomine', [true]).catch(() => undefined)
  await w?.stop()
})

const provider = () => w.chain.anvil.provider
const dataKey = () => hexlify(w.dataKeys.get(w.capsuleId) as Uint8Array)

/** A chain-path request of the executor, sent (not mined: automine is off) with `tip` gwei. */
function requestOnChain(capsule: string, tip: string): Promise<TransactionResponse> {
  return w.chain.c.accessController
    .connect(w.chain.executor)
    .requestAccess(capsule, w.exec.newEphemeral(), w.chain.measurement, '0x', {
      maxPriorityFeePerGas: parseUnits(tip, 'gwei'),
      maxFeePerGas: parseUnits('100', 'gwei'),
      gasLimit: 1_000_000,
    })
}

/** Asks the fast path; returns the opened key and the grant id. */
async function askFast(capsule: string): Promise<{ grantId: string; key: string }> {
  const eph = w.exec.newEphemeral()
  const res = await w.ask(w.signed({ capsuleId: capsule, fields: { ephemeralKey: getBytes(eph) } }))
  if (res.status !== 'granted' || res.keyRelease === undefined) {
    throw new Error(`fast path: ${JSON.stringify(res)}`)
  }
  const key = await hpkeOpen(
    w.exec.keys.get(eph) as Uint8Array,
    decodeHpkeSealed(res.keyRelease.hpke),
    res.keyRelease.grantId,
  )
  return { grantId: hexlify(res.grantId), key: hexlify(key) }
}

/** Waits until the mempool holds `n` transactions. */
async function pooled(n: number): Promise<void> {
  await until(async () => {
    const s = await provider().send('txpool_status', [])
    return Number(BigInt(s.pending)) >= n
  }, 15_000)
}

/** The grant id of a mined `requestAccess`. */
function chainGrantOf(receipt: TransactionReceipt | null): string {
  const iface = w.chain.c.accessController.interface
  for (const log of receipt?.logs ?? []) {
    const parsed = iface.parseLog(log)
    if (parsed?.name === 'AccessGranted') return (parsed.args[0] as string).toLowerCase()
  }
  throw new Error('no AccessGranted')
}

const eventsFor = (grantId: string) =>
  w.events.filter((e) => 'grantId' in e && (e as { grantId: string }).grantId === grantId)

describe('maxRuns(1) across the fast path and the chain path (ADR 0073)', () => {
  it('chain grant mined ahead of the audit in one block: the audit is an overrun, the chain grant refused, one key', async () => {
    const capsule = capsules[0] as string
    await provider().send('evm_setAutomine', [false])
    let chainTx: TransactionResponse
    let fast: { grantId: string; key: string }
    try {
      chainTx = await requestOnChain(capsule, '50')
      fast = await askFast(capsule)
      await pooled(2) // the chain request and the keyguard's audit
      await provider().send('evm_mine', [])
    } finally {
      await provider().send('evm_setAutomine', [true])
    }
    const chainReceipt = await chainTx.wait()
    expect(chainReceipt?.status).toBe(1)
    const chainGrantId = chainGrantOf(chainReceipt)
    await until(() => w.events.some((e) => e.type === 'audit-recorded' || e.type === 'audit-alert'))
    expect(w.events.filter((e) => e.type === 'audit-alert')).toEqual([])
    await until(() => eventsFor(chainGrantId).some((e) => e.type === 'grant-refused'), 15_000)
    expect(eventsFor(chainGrantId).find((e) => e.type === 'grant-refused')).toEqual({
      type: 'grant-refused',
      grantId: chainGrantId,
      reason: 'fast-path-overrun',
    })
    // One key: the fast path's. The chain grant was never pushed.
    expect(fast.key).toBe(dataKey())
    expect(w.exec.received.has(chainGrantId)).toBe(false)
    expect(eventsFor(chainGrantId).some((e) => e.type === 'released')).toBe(false)
    const ac = w.chain.c.accessController
    expect(await ac.runCount(capsule)).toBe(2n)
    expect(await ac.overrunRunCount(capsule)).toBe(2n)
    const recorded = w.events.find(
      (e) => e.type === 'audit-recorded' && e.grantId === fast.grantId,
    ) as { recordedGrantId: string } | undefined
    // The keyguard answered with the grant id of the run it saw (0); the chain recorded run 1.
    expect((await ac.getGrant(recorded?.recordedGrantId as string)).runIndex).toBe(1n)
    expect((await ac.getGrant(chainGrantId)).runIndex).toBe(0n)
  }, 60_000)

  it('fast path first, its audit mined, then the chain request: the chain request reverts, one key', async () => {
    const capsule = capsules[1] as string
    const ac = w.chain.c.accessController
    const before = w.exec.received.size
    await provider().send('evm_setAutomine', [false])
    let chainTx: TransactionResponse
    let fast: { grantId: string; key: string }
    try {
      fast = await askFast(capsule)
      await pooled(1) // the audit
      await provider().send('evm_mine', [])
      // The executor asks the chain path after its fast-path run is counted: even with a high tip
      // it comes too late (anvil's order within one block is covered by the test above).
      chainTx = await requestOnChain(capsule, '50')
      await pooled(1)
      await provider().send('evm_mine', [])
    } finally {
      await provider().send('evm_setAutomine', [true])
    }
    await until(() => eventsFor(fast.grantId).some((e) => e.type === 'audit-recorded'))
    const receipt = await provider().getTransactionReceipt(chainTx.hash)
    expect(receipt?.status).toBe(0)
    expect(fast.key).toBe(dataKey())
    expect(await ac.runCount(capsule)).toBe(1n)
    expect(await ac.overrunRunCount(capsule)).toBe(0n)
    // Nothing reached the chain path: no second key.
    await new Promise((r) => setTimeout(r, 1000))
    expect(w.exec.received.size).toBe(before)
  }, 60_000)

  it('a chain grant served, then a fast-path request read at a block before it (a lagging RPC): refused chain-lagging, one key', async () => {
    const capsule = capsules[3] as string
    const ac = w.chain.c.accessController
    const chainReceipt = await (await requestOnChain(capsule, '2')).wait()
    const chainGrantId = chainGrantOf(chainReceipt)
    await until(() => w.exec.received.has(chainGrantId), 15_000) // served: the one key
    staleRuns = true
    try {
      const res = await w.ask(
        w.signed({ capsuleId: capsule, fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } }),
      )
      expect(res).toMatchObject({ status: 'refused', reasonCode: 'busy', reason: 'chain-lagging' })
    } finally {
      staleRuns = false
    }
    expect(await ac.runCount(capsule)).toBe(1n)
  }, 60_000)

  it('chain grant mined while the audit is still pending: held, then refused once the audit lands', async () => {
    const capsule = capsules[2] as string
    const ac = w.chain.c.accessController
    let open = (): void => {}
    auditGate = new Promise((r) => {
      open = r
    })
    await provider().send('evm_setAutomine', [false])
    let chainTx: TransactionResponse
    let fast: { grantId: string; key: string }
    try {
      chainTx = await requestOnChain(capsule, '50')
      fast = await askFast(capsule)
      // The audit is held back: this block has the chain grant alone.
      await provider().send('evm_mine', [])
    } finally {
      await provider().send('evm_setAutomine', [true])
    }
    const chainReceipt = await chainTx.wait()
    const chainGrantId = chainGrantOf(chainReceipt)
    expect(await ac.runCount(capsule)).toBe(1n)
    // The keyguard sees the chain grant but does not serve it: the fast path's audit is pending.
    await until(() =>
      eventsFor(chainGrantId).some(
        (e) => e.type === 'grant-held' && (e as { reason: string }).reason === 'audit-pending',
      ),
    )
    expect(w.exec.received.has(chainGrantId)).toBe(false)
    open()
    auditGate = Promise.resolve()
    await until(() => eventsFor(fast.grantId).some((e) => e.type === 'audit-recorded'))
    await until(() => eventsFor(chainGrantId).some((e) => e.type === 'grant-refused'), 15_000)
    expect(eventsFor(chainGrantId).find((e) => e.type === 'grant-refused')).toMatchObject({
      reason: 'fast-path-overrun',
    })
    expect(w.exec.received.has(chainGrantId)).toBe(false)
    expect(fast.key).toBe(dataKey())
    expect(await ac.runCount(capsule)).toBe(2n)
    expect(await ac.overrunRunCount(capsule)).toBe(2n)
    const held: KeyguardEvent[] = eventsFor(chainGrantId)
    expect(held.some((e) => e.type === 'released')).toBe(false)
  }, 60_000)
})
