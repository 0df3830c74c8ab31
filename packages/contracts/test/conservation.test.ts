import { parseEther, ZeroHash } from 'ethers'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseEvents } from '../src/events.ts'
import { accessRequestDomain, jobParamsHash, signAccessRequest } from '../src/fastpath.ts'
import { fee } from '../src/policy/expression.ts'
import {
  balanceOf,
  bytes32,
  capsuleWith,
  DISPUTE_WINDOW,
  send,
  setupWorld,
  WITHDRAWAL_DELAY,
  type World,
} from './helpers.ts'

let w: World
let capsuleId: string
beforeAll(async () => {
  w = await setupWorld()
  capsuleId = (await capsuleWith(w, fee('0.001'))).capsuleId
  await send(w.c.accessController.setSettler(w.settler.address, true))
})
afterAll(() => w?.anvil.stop())

const FEE = parseEther('0.001')

type Op =
  | { kind: 'deposit'; amount: bigint }
  | { kind: 'withdrawDeposit'; part: number }
  | { kind: 'request'; extra: bigint }
  | { kind: 'fastPath' }
  | { kind: 'wait' }
  | { kind: 'claim' }
  | { kind: 'dispute'; pick: number }
  | { kind: 'resolve'; pick: number; split: number }
  | { kind: 'withdrawCredit'; who: number }

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.bigInt({ min: 1n, max: FEE * 3n }).map((amount) => ({ kind: 'deposit', amount }) as Op),
  fc.integer({ min: 1, max: 4 }).map((part) => ({ kind: 'withdrawDeposit', part }) as Op),
  fc.bigInt({ min: 0n, max: FEE }).map((extra) => ({ kind: 'request', extra }) as Op),
  fc.constant({ kind: 'fastPath' } as Op),
  fc.constant({ kind: 'wait' } as Op),
  fc.constant({ kind: 'claim' } as Op),
  fc.nat().map((pick) => ({ kind: 'dispute', pick }) as Op),
  fc
    .tuple(fc.nat(), fc.integer({ min: 0, max: 100 }))
    .map(([pick, split]) => ({ kind: 'resolve', pick, split }) as Op),
  fc.integer({ min: 0, max: 2 }).map((who) => ({ kind: 'withdrawCredit', who }) as Op),
)

describe('fee and deposit conservation', () => {
  it('keeps balance == totalHeld == deposits + credits + open escrows over random operation sequences (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 14 }), async (ops) => {
        const snap = await w.anvil.snapshot()
        try {
          const ac = w.c.accessController
          const held = new Map<string, bigint>() // Held escrows
          const disputed = new Map<string, bigint>()
          const payees = [w.owner, w.executor, w.settler]
          let nonce = 0n
          const open = async (): Promise<bigint> => {
            const escrows = [...held.values(), ...disputed.values()].reduce((a, b) => a + b, 0n)
            let credits = 0n
            for (const p of payees) credits += await ac.credits(p.address)
            return escrows + credits + (await ac.deposits(w.executor.address))
          }
          for (const o of ops) {
            switch (o.kind) {
              case 'deposit':
                await send(ac.connect(w.executor).deposit({ value: o.amount }))
                break
              case 'withdrawDeposit': {
                const d = await ac.deposits(w.executor.address)
                if (d / BigInt(o.part) > 0n) {
                  await send(ac.connect(w.executor).requestWithdrawal(d / BigInt(o.part)))
                  await w.anvil.increaseTime(WITHDRAWAL_DELAY)
                  await send(ac.connect(w.executor).withdrawDeposit())
                }
                break
              }
              case 'request': {
                const r = await send(
                  ac
                    .connect(w.executor)
                    .requestAccess(capsuleId, bytes32(), ZeroHash, '0x', { value: FEE + o.extra }),
                )
                const [g] = parseEvents(ac, r, 'AccessGranted')
                held.set(g!.grantId, FEE + o.extra)
                break
              }
              case 'fastPath': {
                if ((await ac.deposits(w.executor.address)) < FEE) break
                const req = {
                  capsuleId,
                  executor: w.executor.address,
                  ephemeralKey: bytes32(),
                  measurement: ZeroHash,
                  jobParamsHash: jobParamsHash('0x'),
                  fee: FEE,
                  nonce: nonce++,
                  expiry: 2n ** 40n,
                }
                const sig = await signAccessRequest(
                  w.executor,
                  accessRequestDomain(w.anvil.chainId, w.addresses.accessController),
                  req,
                )
                const r = await send(ac.connect(w.owner).recordFastPathGrant(req, '0x', sig))
                held.set(parseEvents(ac, r, 'AccessGranted')[0]!.grantId, FEE)
                break
              }
              case 'wait':
                await w.anvil.increaseTime(DISPUTE_WINDOW)
                break
              case 'claim': {
                const now = BigInt((await w.anvil.provider.getBlock('latest'))!.timestamp) + 1n
                const ready: string[] = []
                for (const id of held.keys())
                  if ((await ac.getEscrow(id)).claimableAt <= now) ready.push(id)
                if (ready.length === 0) break
                await send(ac.connect(w.owner).claimFees(ready))
                for (const id of ready) held.delete(id)
                break
              }
              case 'dispute': {
                const ids = [...held.keys()]
                if (ids.length === 0) break
                const id = ids[o.pick % ids.length]!
                await send(ac.connect(w.settler).disputeEscrow(id))
                disputed.set(id, held.get(id)!)
                held.delete(id)
                break
              }
              case 'resolve': {
                const ids = [...disputed.keys()]
                if (ids.length === 0) break
                const id = ids[o.pick % ids.length]!
                const amount = disputed.get(id)!
                const a = (amount * BigInt(o.split)) / 100n
                await send(
                  ac
                    .connect(w.settler)
                    .resolveEscrow(id, [w.owner.address, w.executor.address], [a, amount - a]),
                )
                disputed.delete(id)
                break
              }
              case 'withdrawCredit': {
                const p = payees[o.who]!
                if ((await ac.credits(p.address)) > 0n) await send(ac.connect(p).withdrawCredit())
                break
              }
            }
            const total = await ac.totalHeld()
            expect(await balanceOf(w, w.addresses.accessController)).toBe(total)
            expect(await open()).toBe(total)
          }
        } finally {
          await w.anvil.revert(snap)
        }
      }),
      { numRuns: 20 },
    )
  })
})
