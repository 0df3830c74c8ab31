import { decodeHpkeSealed, hpkeOpen } from '@digicap/capsule-core'
import { accessRequestDomain, hashAccessRequest } from '@digicap/contracts'
import {
  type AccessRequest,
  type AccessResponse,
  accessRequestDigest,
  addressToBytes,
  encodeAccessRequest,
  fastPathProtocol,
  request,
  type WireRemoteError,
} from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { hexlify, randomBytes, toBeHex, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type FastPathEvent, fastPathServer } from '../src/index.ts'
import { accessDomain } from './helpers/access-request.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { auditsDown, chainClientFor, createNode, keyguardParts, until } from './helpers/world.ts'

let w: KeyguardWorld
let stranger: Libp2p
const dataKey = randomBytes(32)

beforeAll(async () => {
  w = await keyguardWorld({
    strangers: 1,
    dataKey,
    keyguard: {
      pollIntervalMs: 200,
      fastPath: {
        enabled: true,
        maxExpirySeconds: 300,
        rate: { capacity: 20, refillPerSecond: 0.5 },
      },
    },
    events: ['fast-path-granted', 'fast-path-refused', 'audit-recorded', 'audit-alert'],
  })
  stranger = w.strangers[0] as Libp2p
}, 60_000)

afterAll(() => w?.stop())

const now = () => BigInt(Math.floor(Date.now() / 1000))
const domain = () => accessDomain(w.chain)

/** Signed by `signer`, always in the name of the registered executor unless `over` says. */
function signed(
  over: Partial<AccessRequest> = {},
  signer: Wallet = w.chain.executor,
): AccessRequest {
  return w.signed({
    signer,
    fields: { executor: addressToBytes(w.chain.executor.address as `0x${string}`), ...over },
  })
}

const ask = (req: AccessRequest, from: Libp2p = w.exec.node): Promise<AccessResponse> =>
  w.ask(req, from)

function refusal(res: AccessResponse) {
  expect(res.status).toBe('refused')
  return res.status === 'refused' ? { code: res.reasonCode, reason: res.reason } : undefined
}

describe('fast path', () => {
  it('keeps the audit record on disk when recording fails, and records it after a restart', async () => {
    const node = await createNode()
    const aux = await keyguardParts()
    await w.exec.node.peerStore.merge(node.peerId, { multiaddrs: node.getMultiaddrs() })
    const real = chainClientFor(w.chain)
    const down = auditsDown(real)
    const seen: FastPathEvent[] = []
    const init = { dataDir: aux.dir, auditRetryBaseMs: 5 }
    const first = fastPathServer(init)({
      ...w.parts,
      chain: down,
      libp2p: node,
      onEvent: (e) => seen.push(e),
    })
    await first.start()
    const res = await request(w.exec.node, node.peerId, fastPathProtocol, signed())
    expect(res.status).toBe('granted')
    const grantId = res.status === 'granted' ? hexlify(res.grantId) : ''
    await until(() => seen.some((e) => e.type === 'audit-alert'))
    expect(seen.find((e) => e.type === 'audit-alert')).toEqual({
      type: 'audit-alert',
      grantId,
      error: 'NETWORK_ERROR',
      reason: 'failed',
    })
    expect(await first.auditPending()).toBe(1)
    await first.stop()
    const second = fastPathServer(init)({
      ...w.parts,
      chain: real,
      libp2p: node,
      onEvent: (e) => seen.push(e),
    })
    await second.start()
    await until(() => seen.some((e) => e.type === 'audit-recorded'))
    expect(await second.auditPending()).toBe(0)
    expect((await w.chain.c.accessController.getGrant(grantId)).fastPath).toBe(true)
    await second.stop()
    await node.stop()
    await aux.cleanup()
  })

  it('records audits as an operator account the owner approved; an unapproved or unfunded one raises a typed audit-alert', async () => {
    const node = await createNode()
    const aux = await keyguardParts()
    await w.exec.node.peerStore.merge(node.peerId, { multiaddrs: node.getMultiaddrs() })
    const operator = w.chain.anvil.signers[6] as Wallet
    const broke = new Wallet(hexlify(randomBytes(32)), w.chain.anvil.provider)
    const seen: FastPathEvent[] = []
    const serverAs = (signer: Wallet) =>
      fastPathServer({ dataDir: aux.dir, auditRetryBaseMs: 5 })({
        ...w.parts,
        chain: chainClientFor(w.chain, signer),
        libp2p: node,
        onEvent: (e) => seen.push(e),
      })
    // Not approved: the contract says NotKeyguard; the record stays journaled.
    seen.length = 0
    const first = serverAs(operator)
    await first.start()
    const res = await request(w.exec.node, node.peerId, fastPathProtocol, signed())
    expect(res.status).toBe('granted')
    await until(() => seen.some((e) => e.type === 'audit-alert'))
    expect(seen.find((e) => e.type === 'audit-alert')).toMatchObject({
      error: 'NotKeyguard',
      reason: 'operator-not-approved',
    })
    await first.stop()
    // Approved but without ETH for gas: the journaled record is re-sent at start and fails
    // again, typed. Both failures are the operator's (docs/adr/0084): nobody is cut off, the
    // fast path is halted from the restart on until an audit lands.
    const registry = w.chain.c.capsuleRegistry.connect(w.chain.owner)
    await (await registry.getFunction('setOperator')(broke.address, true)).wait()
    seen.length = 0
    const second = serverAs(broke)
    await second.start()
    await until(() => seen.some((e) => e.type === 'audit-alert'))
    expect(seen.find((e) => e.type === 'audit-alert')).toMatchObject({
      reason: 'operator-unfunded',
    })
    const busy = await request(w.exec.node, node.peerId, fastPathProtocol, signed())
    expect(busy).toEqual({ status: 'refused', reasonCode: 'busy', reason: 'audits-halted' })
    await second.stop()
    // Approved and funded: the journaled record lands, sent by the operator.
    await (await registry.getFunction('setOperator')(operator.address, true)).wait()
    seen.length = 0
    const server = serverAs(operator)
    await server.start()
    await until(() => seen.some((e) => e.type === 'audit-recorded'))
    expect(await server.auditPending()).toBe(0)
    const recorded = seen.find((e) => e.type === 'audit-recorded')
    const tx = await w.chain.anvil.provider.getTransaction(
      recorded?.type === 'audit-recorded' ? recorded.transactionHash : '0x',
    )
    expect(tx?.from).toBe(operator.address)
    await server.stop()
    await node.stop()
    await aux.cleanup()
  })

  it("protocol's EIP-712 digest equals the contract's hashSignedRequest and hashAccessRequest", async () => {
    const req = signed({
      fee: 12345n,
      jobParams: new Uint8Array([1, 2, 3]),
      jobParamsHash: keccak_256(new Uint8Array([1, 2, 3])),
    })
    const asStruct = {
      capsuleId: hexlify(req.capsuleId),
      executor: w.chain.executor.address,
      ephemeralKey: hexlify(req.ephemeralKey),
      measurement: hexlify(req.measurement),
      jobParamsHash: hexlify(req.jobParamsHash),
      fee: req.fee,
      nonce: BigInt(hexlify(req.nonce)),
      expiry: req.expiry,
    }
    const ours = hexlify(accessRequestDigest(req, domain()))
    const onChain = await w.chain.c.accessController.hashSignedRequest({
      ...asStruct,
      nonce: toBeHex(asStruct.nonce, 32),
    })
    expect(ours).toBe(onChain)
    expect(ours).toBe(
      hashAccessRequest(accessRequestDomain(31337n, w.chain.addresses.accessController), asStruct),
    )
  })

  it('grants with the inline HPKE key, then records the grant on chain (fastPath = true)', async () => {
    const req = signed()
    const res = await ask(req)
    expect(res.status).toBe('granted')
    if (res.status !== 'granted' || res.keyRelease === undefined) throw new Error('no key')
    const priv = w.exec.keys.get(hexlify(req.ephemeralKey)) as Uint8Array
    const opened = await hpkeOpen(priv, decodeHpkeSealed(res.keyRelease.hpke), res.grantId)
    expect(opened).toEqual(dataKey)
    expect(res.keyRelease.fastPath).toBe(true)
    const grantId = hexlify(res.grantId)
    await until(() => w.events.some((e) => e.type === 'audit-recorded' && e.grantId === grantId))
    const recorded = w.events.find((e) => e.type === 'audit-recorded' && e.grantId === grantId)
    expect(recorded).toMatchObject({ recordedGrantId: grantId })
    const grant = await w.chain.c.accessController.getGrant(grantId)
    expect(grant.fastPath).toBe(true)
    expect(grant.ephemeralKey).toBe(hexlify(req.ephemeralKey))
    expect(
      await w.chain.c.accessController.nonceUsed(
        w.chain.executor.address,
        hexlify(req.capsuleId),
        BigInt(hexlify(req.nonce)),
      ),
    ).toBe(true)
  })

  it('refuses a replayed nonce', async () => {
    const req = signed()
    expect((await ask(req)).status).toBe('granted')
    expect(refusal(await ask(req))).toEqual({ code: 'replayed', reason: undefined })
  })

  it('refuses expired and too-far requests', async () => {
    expect(refusal(await ask(signed({ expiry: now() - 1n })))?.code).toBe('expired')
    expect(refusal(await ask(signed({ expiry: now() + 3600n })))).toEqual({
      code: 'expired',
      reason: 'too-far',
    })
  })

  it('refuses a request signed by another account', async () => {
    expect(refusal(await ask(signed({}, w.chain.other))))?.toEqual({
      code: 'bad-signature',
      reason: undefined,
    })
  })

  it('refuses an unregistered executor (policy-denied, EXECUTOR_NOT_REGISTERED)', async () => {
    const req = signed(
      { executor: addressToBytes(w.chain.other.address as `0x${string}`) },
      w.chain.other,
    )
    expect(refusal(await ask(req))).toEqual({
      code: 'policy-denied',
      reason: 'EXECUTOR_NOT_REGISTERED',
    })
  })

  it("refuses a valid request sent from a peer that is not the executor's registered peer", async () => {
    expect(refusal(await ask(signed(), stranger))).toEqual({
      code: 'bad-signature',
      reason: 'peer-id-mismatch',
    })
  })

  it("refuses with the policy's reason when checkAccess denies", async () => {
    const req = signed({ measurement: randomBytes(32) })
    expect(refusal(await ask(req))).toEqual({ code: 'policy-denied', reason: 'WRONG_ENVIRONMENT' })
  })

  it('refuses an unknown capsule', async () => {
    expect(refusal(await ask(signed({ capsuleId: randomBytes(32) })))?.code).toBe('unknown-capsule')
  })

  it('answers malformed, truncated and oversized requests with typed wire errors', async () => {
    const raw = (bytes: Uint8Array) =>
      request(
        w.exec.node,
        w.kgNode.peerId,
        { ...fastPathProtocol, encodeRequest: () => bytes },
        signed(),
      ).then(
        () => expect.fail('accepted'),
        (e: unknown) => e as WireRemoteError,
      )
    const valid = encodeAccessRequest(signed())
    const garbage = await raw(new Uint8Array([0xff, 0x00, 0x01]))
    expect(garbage.code).toBe('WIRE_REMOTE')
    expect(garbage.remoteCode).toBe('format')
    expect((await raw(valid.subarray(0, valid.length - 7))).remoteCode).toBe('format')
    const big = await request(
      w.exec.node,
      w.kgNode.peerId,
      { ...fastPathProtocol, encodeRequest: () => new Uint8Array(fastPathProtocol.maxSize + 1) },
      signed(),
      { maxSize: fastPathProtocol.maxSize + 1 },
    ).then(
      () => expect.fail('accepted'),
      (e: unknown) => e as WireRemoteError,
    )
    expect(['WIRE_REMOTE', 'WIRE_STREAM', 'WIRE_TRUNCATED']).toContain(big.code)
    // The server is still healthy afterwards.
    expect((await ask(signed())).status).toBe('granted')
  })

  it('rate-limits a flooding peer with retryAfterMs', async () => {
    let last: AccessResponse | undefined
    for (let i = 0; i < 30; i++) {
      last = await ask(signed({ expiry: now() - 1n }), stranger)
      if (last.status === 'refused' && last.reasonCode === 'rate-limited') break
    }
    expect(last?.status === 'refused' && last.reasonCode).toBe('rate-limited')
    expect(last?.status === 'refused' && last.retryAfterMs).toBeGreaterThan(0)
  })
})
