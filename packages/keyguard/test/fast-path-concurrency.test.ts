// The fast path under concurrency: run limits and deposits hold when requests arrive before the
// previous audit is mined (reviewer's repro), authorization precedes the sealer unwrap, the
// global cap answers `busy`, and a restart keeps refusing replays of unrecorded grants.
import { decodeHpkeSealed, hpkeOpen } from '@digicap/capsule-core'
import { all, environment, fee, maxRuns } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import {
  type AccessRequest,
  type AccessResponse,
  addressToBytes,
  fastPathProtocol,
  request,
  signAccessRequest,
} from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getBytes, hexlify, parseEther, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type FastPathEvent, type FastPathServer, fastPathServer } from '../src/index.ts'
import {
  type Chain,
  chainClientFor,
  createNode,
  type ExecutorSide,
  executorSide,
  instrumented,
  type KeyguardParts,
  keyguardParts,
  quietLogger,
  registerCapsule,
  registerExecutor,
  setupChain,
  storeKey,
  until,
} from './helpers/world.ts'

let chain: Chain
let kgNode: Libp2p
let exec: ExecutorSide
let stranger: Libp2p
let parts: KeyguardParts
let fast: FastPathServer
let envPolicy: string
let counting: ReturnType<typeof instrumented>
const events: FastPathEvent[] = []
const dataKey = randomBytes(32)

/** The real sealer, counting unwraps (and optionally holding them until `release`). */
beforeAll(async () => {
  ;[chain, kgNode, exec, stranger] = await Promise.all([
    setupChain(),
    createNode(),
    executorSide(),
    createNode(),
  ])
  envPolicy = chain.policy
  await registerExecutor(chain, chain.executor, exec.node)
  parts = await keyguardParts()
  counting = instrumented(parts.sealer)
  fast = fastPathServer({ dataDir: parts.dir, rate: { capacity: 50, refillPerSecond: 5 } })({
    sealer: counting,
    keyStore: parts.keyStore,
    journal: parts.journal,
    chain: chainClientFor(chain),
    libp2p: kgNode,
    onEvent: (e) => events.push(e),
    logger: quietLogger,
  })
  await fast.start()
  for (const n of [exec.node, stranger]) {
    await n.peerStore.merge(kgNode.peerId, { multiaddrs: kgNode.getMultiaddrs() })
  }
}, 60_000)

afterAll(async () => {
  await fast?.stop()
  await Promise.all([kgNode?.stop(), exec?.stop(), stranger?.stop(), chain?.anvil.stop()])
  await parts?.cleanup()
})

const now = () => BigInt(Math.floor(Date.now() / 1000))
const domain = () => ({
  chainId: BigInt(chain.addresses.chainId),
  verifyingContract: chain.addresses.accessController as `0x${string}`,
})

function signed(
  capsuleId: string,
  over: Partial<AccessRequest> = {},
  signer: Wallet = chain.executor,
): AccessRequest {
  const jobParams = new Uint8Array(0)
  return signAccessRequest(
    {
      capsuleId: getBytes(capsuleId),
      executor: addressToBytes(signer.address as `0x${string}`),
      ephemeralKey: getBytes(exec.newEphemeral()),
      measurement: getBytes(chain.measurement),
      jobParamsHash: keccak_256(jobParams),
      fee: 0n,
      nonce: randomBytes(32),
      expiry: now() + 120n,
      jobParams,
      ...over,
    },
    domain(),
    getBytes(signer.privateKey),
  )
}

const ask = (req: AccessRequest, from: Libp2p = exec.node, to: Libp2p = kgNode) =>
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
  chain.policy = policy
  const id = await registerCapsule(chain, kgNode)
  chain.policy = envPolicy
  await storeKey(parts, id, dataKey)
  return id
}

async function expectRecordedAs(res: AccessResponse, req: AccessRequest): Promise<string> {
  if (res.status !== 'granted' || res.keyRelease === undefined) throw new Error('not granted')
  const grantId = hexlify(res.grantId)
  const priv = exec.keys.get(hexlify(req.ephemeralKey)) as Uint8Array
  expect(await hpkeOpen(priv, decodeHpkeSealed(res.keyRelease.hpke), res.grantId)).toEqual(dataKey)
  await until(
    () => events.some((e) => e.type === 'audit-recorded' && e.grantId === grantId),
    30_000,
  )
  expect(events.find((e) => e.type === 'audit-recorded' && e.grantId === grantId)).toMatchObject({
    recordedGrantId: grantId,
  })
  const grant = await chain.c.accessController.getGrant(grantId)
  expect(grant.fastPath).toBe(true)
  expect(grant.ephemeralKey).toBe(hexlify(req.ephemeralKey))
  return grantId
}

describe('fast path under concurrency', () => {
  it('maxRuns(1): three concurrent requests release exactly one key, recorded under the grant id it was sent with', async () => {
    const pol = await deployPolicy(chain.owner, all(environment(chain.measurement), maxRuns(1)), {
      nodeRegistry: chain.addresses.nodeRegistry,
    })
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
    expect((await chain.c.accessController.getGrant(grantId)).runIndex).toBe(0n)
    expect(await chain.c.accessController.runCount(capsuleId)).toBe(1n)
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
    const runs = await Promise.all(ids.map((id) => chain.c.accessController.getGrant(id)))
    expect(runs.map((g) => g.runIndex).sort()).toEqual([0n, 1n])
  })

  it('a deposit for one paid run buys exactly one key across two capsules', async () => {
    const price = '0.001'
    const pol = await deployPolicy(chain.owner, all(environment(chain.measurement), fee(price)), {
      nodeRegistry: chain.addresses.nodeRegistry,
    })
    const a = await capsuleUnder(pol.address)
    const b = await capsuleUnder(pol.address)
    const tx = await chain.c.accessController
      .connect(chain.executor)
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
    expect(await chain.c.accessController.deposits(chain.executor.address)).toBe(0n)
    expect(events.filter((e) => e.type === 'audit-alert')).toEqual([])
  })

  it('refuses unregistered executors, foreign peers and policy denials without a sealer unwrap', async () => {
    const capsuleId = await capsuleUnder(envPolicy)
    const before = counting.calls()
    expect(refusal(await ask(signed(capsuleId, {}, chain.other)))).toEqual({
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
    const aux = await keyguardParts(undefined, parts.sealer)
    await storeKey(aux, capsuleId, dataKey)
    const node = await createNode()
    await exec.node.peerStore.merge(node.peerId, { multiaddrs: node.getMultiaddrs() })
    let open = (): void => {}
    const held = instrumented(
      parts.sealer,
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
      chain: chainClientFor(chain),
      libp2p: node,
      onEvent: (e) => seen.push(e),
    })
    await capped.start()
    const first = signed(capsuleId)
    const pending = ask(first, exec.node, node)
    await until(() => held.calls() === 1)
    const second = await ask(signed(capsuleId), exec.node, node)
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
    const aux = await keyguardParts(undefined, parts.sealer)
    await storeKey(aux, capsuleId, dataKey)
    await exec.node.peerStore.merge(node.peerId, { multiaddrs: node.getMultiaddrs() })
    const real = chainClientFor(chain)
    const down = {
      ...real,
      recordFastPathGrant: async () => {
        throw Object.assign(new Error('rpc down'), { code: 'NETWORK_ERROR' })
      },
    }
    const seen: FastPathEvent[] = []
    const init = { dataDir: aux.dir, auditRetryBaseMs: 1, pendingWaitMs: 200 }
    const make = (c: typeof real) =>
      fastPathServer(init)({
        sealer: parts.sealer,
        keyStore: aux.keyStore,
        journal: aux.journal,
        chain: c,
        libp2p: node,
        onEvent: (e) => seen.push(e),
      })
    const first = make(down)
    await first.start()
    const req = signed(capsuleId)
    expect((await ask(req, exec.node, node)).status).toBe('granted')
    await until(() => seen.some((e) => e.type === 'audit-alert'))
    // The unrecorded audit holds the capsule: its run is not visible to checkAccess yet.
    expect(refusal(await ask(signed(capsuleId), exec.node, node))).toEqual({
      code: 'busy',
      reason: 'audit-pending',
    })
    await first.stop()
    const second = make(down)
    await second.start()
    expect(refusal(await ask(req, exec.node, node))).toEqual({
      code: 'replayed',
      reason: undefined,
    })
    await until(() => seen.filter((e) => e.type === 'audit-alert').length >= 2)
    await second.stop()
    const third = make(real)
    await third.start()
    await until(() => seen.some((e) => e.type === 'audit-recorded'), 30_000)
    expect(await third.auditPending()).toBe(0)
    expect((await ask(signed(capsuleId), exec.node, node)).status).toBe('granted')
    await until(() => seen.filter((e) => e.type === 'audit-recorded').length >= 2, 30_000)
    await third.stop()
    await node.stop()
    await aux.cleanup()
  })
})
