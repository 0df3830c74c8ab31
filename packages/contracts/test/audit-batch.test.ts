/**
 * `recordFastPathGrants`: several fast-path audits in one transaction. Each item is recorded
 * exactly as a lone `recordFastPathGrant` would be; an item that would revert is skipped alone
 * (`FastPathAuditFailed`, no state change) and never voids the others; too little gas reverts
 * the whole batch rather than skipping items.
 */
import { parseEther, type Wallet, ZeroHash } from 'ethers'
import { describe, expect, it } from 'vitest'
import { parseEvents } from '../src/events.ts'
import {
  ACCESS_REQUEST_TYPES,
  accessRequestDomain,
  jobParamsHash,
  type SignedAccessRequest,
} from '../src/fastpath.ts'
import { fee, maxRuns } from '../src/policy/expression.ts'
import { Reason } from '../src/reasons.ts'
import {
  bytes32,
  capsuleWith,
  expectConserved,
  expectRevert,
  send,
  useWorld,
  type World,
} from './helpers.ts'

let w: World
useWorld((world) => {
  w = world
})

const FEE = parseEther('0.01')

async function signed(
  capsuleId: string,
  overrides: Partial<SignedAccessRequest> = {},
  signer: Wallet = w.executor,
) {
  const now = (await w.anvil.provider.getBlock('latest'))!.timestamp
  const req: SignedAccessRequest = {
    capsuleId,
    executor: w.executor.address,
    ephemeralKey: bytes32(),
    measurement: ZeroHash,
    jobParamsHash: jobParamsHash('0x'),
    fee: 0n,
    nonce: BigInt(bytes32()),
    expiry: BigInt(now + 300),
    ...overrides,
  }
  const domain = accessRequestDomain(w.anvil.chainId, w.addresses.accessController)
  return { req, signature: await signer.signTypedData(domain, ACCESS_REQUEST_TYPES, req) }
}

type Item = Awaited<ReturnType<typeof signed>>
const args = (items: Item[], jobParams: string[] = items.map(() => '0x')) =>
  [items.map((i) => i.req), jobParams, items.map((i) => i.signature)] as const

describe('recordFastPathGrants (batched audits)', () => {
  it('records the good items and skips each bad one alone, with its reason', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(3))
    const { capsuleId: paid } = await capsuleWith(w, fee('0.01'))
    const { capsuleId: foreign } = await capsuleWith(w, maxRuns(5), w.other)
    const { capsuleId: revoked } = await capsuleWith(w, maxRuns(5))
    await send(w.c.capsuleRegistry.connect(w.owner).revoke(revoked))
    await send(w.c.accessController.connect(w.executor).deposit({ value: FEE }))
    const ac = w.c.accessController.connect(w.owner)
    const recorded = await signed(capsuleId)
    await send(ac.recordFastPathGrant(recorded.req, '0x', recorded.signature))

    const good1 = await signed(capsuleId)
    const good2 = await signed(paid, { fee: FEE })
    const good3 = await signed(capsuleId)
    const items: Item[] = [
      good1,
      recorded, // NonceUsed
      await signed(capsuleId, {}, w.other), // InvalidSignature
      good2,
      await signed(foreign), // NotKeyguard: another owner's capsule
      good1, // NonceUsed: the same request twice in one batch
      good3,
      // maxRuns(3) reached by good1 and good3: recorded as an overrun, not skipped (ADR 0073)
      await signed(capsuleId),
      await signed(revoked), // AccessDenied: CAPSULE_REVOKED
    ]
    const jobParams = items.map(() => '0x')
    const grantIds = await ac.recordFastPathGrants.staticCall(...args(items, jobParams))
    const receipt = await send(ac.recordFastPathGrants(...args(items, jobParams)))

    const granted = parseEvents(ac, receipt, 'AccessGranted')
    expect(granted.map((g) => g.ephemeralKey)).toEqual(
      [good1, good2, good3, items[7]!].map((i) => i.req.ephemeralKey),
    )
    expect(granted.every((g) => g.fastPath)).toBe(true)
    expect([...grantIds].map((id, i) => (id === ZeroHash ? i : -1)).filter((i) => i >= 0)).toEqual([
      1, 2, 4, 5, 8,
    ])
    const overruns = parseEvents(ac, receipt, 'FastPathOverrun')
    expect(overruns.map((o) => [o.capsuleId, o.grantId, Number(o.reason)])).toEqual([
      [capsuleId, grantIds[7], Reason.MAX_RUNS_REACHED],
    ])
    const failed = parseEvents(ac, receipt, 'FastPathAuditFailed')
    const reasons = failed.map((f) => [
      Number(f.index),
      ac.interface.parseError(f.reason as string)?.name,
    ])
    expect(reasons).toEqual([
      [1, 'NonceUsed'],
      [2, 'InvalidSignature'],
      [4, 'NotKeyguard'],
      [5, 'NonceUsed'],
      [8, 'AccessDenied'],
    ])
    // Skipped items changed nothing: their nonces are free, the runs counted are the recorded
    // ones (the overrun's included: its key is out).
    expect(await ac.runCount(capsuleId)).toBe(4n)
    expect(await ac.overrunRunCount(capsuleId)).toBe(4n)
    expect(await ac.runCount(foreign)).toBe(0n)
    expect(await ac.runCount(revoked)).toBe(0n)
    expect(await ac.nonceUsed(w.executor.address, foreign, items[4]!.req.nonce)).toBe(false)
    expect(await ac.nonceUsed(w.executor.address, revoked, items[8]!.req.nonce)).toBe(false)
    // The paid item took its fee from the deposit, as a lone audit would.
    const [escrow] = parseEvents(ac, receipt, 'FeeEscrowed')
    expect(escrow!.amount).toBe(FEE)
    expect(await ac.deposits(w.executor.address)).toBe(0n)
    await expectConserved(w)
  })

  it('gives a batch the rights of its sender, and item calls only to itself', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(5))
    const item = await signed(capsuleId)
    const byStranger = await send(
      w.c.accessController.connect(w.other).recordFastPathGrants(...args([item])),
    )
    const [failed] = parseEvents(w.c.accessController, byStranger, 'FastPathAuditFailed')
    expect(w.c.accessController.interface.parseError(failed!.reason as string)?.name).toBe(
      'NotKeyguard',
    )
    await expectRevert(
      w.c.accessController
        .connect(w.owner)
        .recordFastPathGrantFor(w.owner.address, item.req, '0x', item.signature),
      'NotSelf',
      [w.owner.address],
    )
    await expectRevert(
      w.c.accessController.connect(w.owner).recordFastPathGrants([item.req], [], [item.signature]),
      'LengthMismatch',
    )
    expect(await w.c.accessController.runCount(capsuleId)).toBe(0n)
  })

  it('reverts the whole batch when an item runs out of gas, instead of skipping it', async () => {
    const { capsuleId } = await capsuleWith(w, maxRuns(10))
    const items = [await signed(capsuleId), await signed(capsuleId), await signed(capsuleId)]
    const ac = w.c.accessController.connect(w.owner)
    const estimate = await ac.recordFastPathGrants.estimateGas(...args(items))
    // Too little for all three: nothing may be recorded as skipped.
    const err = await ac
      .recordFastPathGrants(...args(items), { gasLimit: (estimate * 2n) / 3n })
      .then((tx) => tx.wait())
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    expect(err).toBeDefined()
    expect(await ac.runCount(capsuleId)).toBe(0n)
    // The estimate itself records all three.
    const receipt = await send(ac.recordFastPathGrants(...args(items), { gasLimit: estimate }))
    expect(parseEvents(ac, receipt, 'AccessGranted')).toHaveLength(3)
    expect(parseEvents(ac, receipt, 'FastPathAuditFailed')).toHaveLength(0)
  })
})
