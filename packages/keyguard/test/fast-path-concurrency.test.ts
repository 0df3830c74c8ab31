// The fast path under concurrency: run limits and deposits hold when requests arrive before the
// previous audit is mined (reviewer's repro), authorization precedes the sealer unwrap, the
// global cap answers `busy`, and a restart keeps refusing replays of unrecorded grants.
import { decodeHpkeSealed, hpkeOpen } from '@digicap/capsule-core'
import { all, environment, fee, maxRuns } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import {
  type AccessRequest,
  type AccessResponse,
  fastPathProtocol,
  request,
} from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { hexlify, parseEther, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type FastPathEvent, type FastPathServer, fastPathServer } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import {
  auditsDown,
  chainClientFor,
  createNode,
  instrumented,
  keyguardParts,
  quietLogger,
  registerCapsule,
  storeKey,
  until,
} from './helpers/world.ts'

let w: KeyguardWorld
let stranger: Libp2p
let fast: FastPathServer
let envPolicy: string
let counting: ReturnType<typeof instrumented>
const events: FastPathEvent[] = []
const dataKey = randomBytes(32)

/** The real sealer, counting unwraps (and optionally holding them until `release`). */
beforeAll(async () => {
  // No keyguard: the fast-path server alone, on the world's parts, its capsules made per test.
  w = await keyguardWorld({ strangers: 1, capsules: 0, keyguard: false })
  stranger = w.strangers[0] as Libp2p
  envPolicy = w.chain.policy
  counting = instrumented(w.parts.sealer)
  fast = fastPathServer({ dataDir: w.parts.dir, rate: { capacity: 50, refillPerSecond: 5 } })({
    sealer: counting,
    keyStore: w.parts.keyStore,
    journal: w.parts.journal,
    chain: chainClientFor(w.chain),
    libp2p: w.kgNode,
    onEvent: (e) => events.push(e),
    logger: quietLogger,
  })
  w.defer('fast-path server', () => fast.stop())
  await fast.start()
}, 60_000)

afterAll(() => w?.stop())

const signed = (
  capsuleId: string,
  over: Partial<AccessRequest> = {},
  signer: Wallet = w.chain.executor,
): AccessRequest => w.signed({ capsuleId, signer, fields: over })

const ask = (req: AccessRequest, from: Libp2p = w.exec.node, to: Libp2p = w.kgNode) =>
  request(from, to.peerId, fastPathProtocol, req)

const refusal = (res: AccessResponse) =>
  res.status === 'refused' ? { code: res.reasonCode, reason: res.reason } : { code: 'granted' }

/** Waits until no audit of the main server is in flight, so owner transactions do not race it. */
async function auditsSettled(): Promise<void> {
  await until(async () => (await fast.auditPending()) === 0, 30_000)
}

/** A capsule under `policy` (owner transactions only after the audits settled). */
async function capsuleUnder(policy: string): Promise<string> {
  await auditsSettled()
  w.chain.policy = policy
  const id = await registerCapsule(w.chain, w.kgNode)
  w.chain.policy = envPolicy
  await storeKey(w.parts, id, dataKey)
  return id
}

async function expectRecordedAs(res: AccessResponse, req: AccessRequest): Promise<string> {
  if (res.status !== 'granted' || res.keyRelease === undefined) throw new Error('not granted')
  const grantId = hexlify(res.grantId)
  const priv = w.exec.keys.get(hexlify(req.ephemeralKey)) as Uint8Array
  expect(await hpkeOpen(priv, decodeHpkeSealed(res.keyRelease.hpke), res.grantId)).toEqual(dataKey)
  await until(
    () => events.some((e) => e.type === 'audit-recorded' && e.grantId === grantId),
    30_000,
  )
  expect(events.find((e) => e.type === 'audit-recorded' && e.grantId === grantId)).toMatchObject({
    recordedGrantId: grantId,
  })
  const grant = await w.chain.c.accessController.getGrant(grantId)
  expect(grant.fastPath).toBe(true)
  expect(grant.ephemeralKey).toBe(hexlify(req.ephemeralKey))
  return grantId
}

describe('fast path under concurrency', () => {
  it('maxRuns(1): three concurrent requests release exactly one key, recorded under the grant id it was sent with', async () => {
    const pol = await deployPolicy(
      w.chain.owner,
      all(environment(w.chain.measurement), maxRuns(1)),
      {
        nodeRegistry: w.chain.addresses.nodeRegistry,
      },
    )
    const capsuleId = await capsuleUnder(pol.address)
    const reqs = [signed(capsuleId), signed(capsuleId), signed(capsuleId)]
    const res = await Promise.all(reqs.map((r) => ask(r)))
    const granted = res.flatMap((r, i) => (r.status === 'granted' ? [i] : []))
    expect(granted).toHaveLength(1)
    for (const r of res.filter((x) => x.status === 'refused')) {
      expect([
        JSON.stringify({ code: 'policy-denied', reason: 'MAX_RUNS_REACHED' }),
        JSON.stringify({ code: 'busy', reason: 'audit-pending' }),
      ]).toContain(JSON.stringify(refusal(r)))
    }
    const i = granted[0] as number
    const grantId = await expectRecordedAs(res[i] as AccessResponse, reqs[i] as AccessRequest)
    expect((await w.chain.c.accessController.getGrant(grantId)).runIndex).toBe(0n)
    expect(await w.chain.c.accessController.runCount(capsuleId)).toBe(1n)
    expect(events.filter((e) => e.type === 'audit-alert')).toEqual([])
    // Once the audit is mined the run limit holds for later requests as well.
    expect(refusal(await ask(signed(capsuleId)))).toEqual({
      code: 'policy-denied',
      reason: 'MAX_RUNS_REACHED',
    })
  })

  it('two concurrent requests on an unlimited capsule both get keys, each under the grant id the chain records', async () => {
    const capsuleId = await capsuleUnder(envPolicy)
    const reqs = [signed(capsuleId), signed(capsuleId)]
    const res = await Promise.all(reqs.map((r) => ask(r)))
    expect(res.map((r) => r.status)).toEqual(['granted', 'granted'])
    const ids = await Promise.all(res.map((r, i) => expectRecordedAs(r, reqs[i] as AccessRequest)))
    const runs = await Promise.all(ids.map((id) => w.chain.c.accessController.getGrant(id)))
    expect(runs.map((g) => g.runIndex).sort()).toEqual([0n, 1n])
  })

  it('a deposit for one paid run buys exactly one key across two capsules', async () => {
    const price = '0.001'
    const pol = await deployPolicy(
      w.chain.owner,
      all(environment(w.chain.measurement), fee(price)),
      {
        nodeRegistry: w.chain.addresses.nodeRegistry,
      },
    )
    const a = await capsuleUnder(pol.address)
    const b = await capsuleUnder(pol.address)
    const tx = await w.chain.c.accessController
      .connect(w.chain.executor)
      .deposit({ value: parseEther(price) })
    await tx.wait()
    const reqs = [a, b].map((c) => signed(c, { fee: parseEther(price) }))
    const res = await Promise.all(reqs.map((r) => ask(r)))
    const granted = res.flatMap((r, i) => (r.status === 'granted' ? [i] : []))
    expect(granted).toHaveLength(1)
    const other = res.find((r) => r.status === 'refused') as AccessResponse
    expect([
      JSON.stringify({ code: 'policy-denied', reason: 'INSUFFICIENT_DEPOSIT' }),
      JSON.stringify({ code: 'busy', reason: 'audit-pending' }),
    ]).toContain(JSON.stringify(refusal(other)))
    const i = granted[0] as number
    await expectRecordedAs(res[i] as AccessResponse, reqs[i] as AccessRequest)
    expect(await w.chain.c.accessController.deposits(w.chain.executor.address)).toBe(0n)
    expect(events.filter((e) => e.type === 'audit-alert')).toEqual([])
  })

  it('refuses unregistered executors, foreign peers and policy denials without a sealer unwrap', async () => {
    const capsuleId = await capsuleUnder(envPolicy)
    const before = counting.calls()
    expect(refusal(await ask(signed(capsuleId, {}, w.chain.other)))).toEqual({
      code: 'policy-denied',
      reason: 'EXECUTOR_NOT_REGISTERED',
    })
    expect(refusal(await ask(signed(capsuleId), stranger))).toEqual({
      code: 'bad-signature',
      reason: 'peer-id-mismatch',
    })
    expect(refusal(await ask(signed(capsuleId, { measurement: randomBytes(32) })))).toEqual({
      code: 'policy-denied',
      reason: 'WRONG_ENVIRONMENT',
    })
    expect(counting.calls()).toBe(before)
    const req = signed(capsuleId)
    const res = await ask(req)
    expect(res.status).toBe('granted')
    expect(counting.calls()).toBe(before + 1)
    await expectRecordedAs(res, req)
  })

  it('answers busy (queue-full) beyond the cap of in-flight evaluations', async () => {
    const capsuleId = await capsuleUnder(envPolicy)
    const aux = await keyguardParts(undefined, w.parts.sealer)
    await storeKey(aux, capsuleId, dataKey)
    const node = await createNode()
    await w.exec.node.peerStore.merge(node.peerId, { multiaddrs: node.getMultiaddrs() })
    let open = (): void => {}
    const held = instrumented(
      w.parts.sealer,
      new Promise<void>((r) => {
        open = r
      }),
    )
    const seen: FastPathEvent[] = []
    // The executor is registered: its own queue is the one that fills (strangers' apart).
    const capped = fastPathServer({ dataDir: aux.dir, maxQueue: 1, maxQueuePerExecutor: 1 })({
      sealer: held,
      keyStore: aux.keyStore,
      journal: aux.journal,
      chain: chainClientFor(w.chain),
      libp2p: node,
      onEvent: (e) => seen.push(e),
    })
    await capped.start()
    const first = signed(capsuleId)
    const pending = ask(first, w.exec.node, node)
    await until(() => held.calls() === 1)
    const second = await ask(signed(capsuleId), w.exec.node, node)
    expect(refusal(second)).toEqual({ code: 'busy', reason: 'queue-full' })
    expect(second.status === 'refused' && second.retryAfterMs).toBeGreaterThan(0)
    open()
    expect((await pending).status).toBe('granted')
    await until(() => seen.some((e) => e.type === 'audit-recorded'), 30_000)
    await capped.stop()
    await node.stop()
    await aux.cleanup()
  })

  it('refuses a replay of an unrecorded grant after a restart, and holds the capsule until its audit lands', async () => {
    const capsuleId = await capsuleUnder(envPolicy)
    const node = await createNode()
    const aux = await keyguardParts(undefined, w.parts.sealer)
    await storeKey(aux, capsuleId, dataKey)
    await w.exec.node.peerStore.merge(node.peerId, { multiaddrs: node.getMultiaddrs() })
    const real = chainClientFor(w.chain)
    const down = auditsDown(real)
    const seen: FastPathEvent[] = []
    const init = { dataDir: aux.dir, auditRetryBaseMs: 1, pendingWaitMs: 200 }
    const make = (c: typeof real, over: Partial<typeof init> = {}) =>
      fastPathServer({ ...init, ...over })({
        sealer: w.parts.sealer,
        keyStore: aux.keyStore,
        journal: aux.journal,
        chain: c,
        libp2p: node,
        onEvent: (e) => seen.push(e),
      })
    const first = make(down)
    await first.start()
    const req = signed(capsuleId)
    expect((await ask(req, w.exec.node, node)).status).toBe('granted')
    await until(() => seen.some((e) => e.type === 'audit-alert'))
    // The unrecorded audit holds the capsule: its run is not visible to checkAccess yet.
    expect(refusal(await ask(signed(capsuleId), w.exec.node, node))).toEqual({
      code: 'busy',
      reason: 'audit-pending',
    })
    await first.stop()
    const second = make(down)
    await second.start()
    expect(refusal(await ask(req, w.exec.node, node))).toEqual({
      code: 'replayed',
      reason: undefined,
    })
    await until(() => seen.filter((e) => e.type === 'audit-alert').length >= 2)
    await second.stop()
    // The real chain, with the default retry pauses: under CI load a transaction can fail once
    // for a passing reason (an RPC timeout), and 1 ms pauses spend every retry at once.
    const third = make(real, { auditRetryBaseMs: 200 })
    await third.start()
    const events = () => JSON.stringify(seen.map((e) => [e.type, 'reason' in e ? e.reason : '']))
    await until(() => seen.some((e) => e.type === 'audit-recorded'), 30_000, events)
    expect(await third.auditPending()).toBe(0)
    expect((await ask(signed(capsuleId), w.exec.node, node)).status).toBe('granted')
    await until(() => seen.filter((e) => e.type === 'audit-recorded').length >= 2, 30_000)
    await third.stop()
    await node.stop()
    await aux.cleanup()
  })
})
