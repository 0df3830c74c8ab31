/**
 * Reputation 0 is final (ADR 0027, amended): a fresh executor (reputation 1) caught failing drops
 * to 0, and a later settled pass (here on a fee-0 job, the cheapest there is) leaves it at 0, so a
 * `minReputation(1)` policy ("never caught failing") keeps refusing it. Before, the pass lifted
 * 0 to 1 and re-admitted it. On a real anvil with the settlement deployed as production does.
 */
import { all, minReputation } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { hexlify, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  byAddress,
  certificate,
  certificateValue,
  domainOf,
  grant,
  type HubWorld,
  openJob,
  STAKE,
  sent,
  startHubWorld,
} from './hub-world.ts'

let w: HubWorld
beforeAll(async () => {
  w = await startHubWorld([4], 4)
}, 240_000)
afterAll(() => w?.anvil.stop())

const rep = async (a: string) => Number(await w.c.nodeRegistry.reputationOf(a))

async function certifyAndSettle(
  jobId: string,
  committee: string[],
  signers: Wallet[],
  verdict: number,
) {
  const { hub } = w.hubs.get(4)!
  const value = certificateValue(jobId, verdict)
  const c = await certificate(committee, signers, value, domainOf(w, 4))
  await sent(hub.submitCertificate(value, c.bits, c.others, c.signatures))
  await sent(hub.settle(jobId, committee))
}

describe('reputation 0 is final', () => {
  it('a pass after a fail at reputation 1 leaves 0: minReputation(1) still refuses the executor', async () => {
    const E = w.executor
    const policy = await deployPolicy(w.owner, all(minReputation(1)), {
      nodeRegistry: w.addresses.nodeRegistry,
    })
    const strict = hexlify(randomBytes(32))
    const registry = w.c.capsuleRegistry.connect(w.owner) as typeof w.c.capsuleRegistry
    await sent(
      registry.register(
        strict,
        policy.address,
        'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
        hexlify(randomBytes(32)),
        hexlify(randomBytes(38)),
        hexlify(randomBytes(32)),
      ),
    )
    const admitted = async () =>
      (
        await w.c.accessController.checkAccess(
          strict,
          E.address,
          hexlify(randomBytes(32)),
          hexlify(randomBytes(32)),
          0n,
          false,
          '0x',
        )
      )[0]
    expect(await rep(E.address)).toBe(1)
    expect(await admitted()).toBe(true)
    const members = w.verifiers.slice(0, 4)
    const signers = members.toSorted(byAddress).slice(0, 3)
    const failed = await openJob(w, 4, members)
    await certifyAndSettle(failed.jobId, failed.committee, signers, 0) // caught failing
    expect(await rep(E.address)).toBe(0)
    // Stake back above the minimum (the fail slashed some): only reputation can refuse it now.
    const nr = w.c.nodeRegistry.connect(E) as typeof w.c.nodeRegistry
    await sent(nr.addStake({ value: STAKE }))
    expect(await admitted()).toBe(false)
    const passed = await openJob(w, 4, members, { grantId: await grant(w, w.attestedCapsule, 0n) })
    const before = await Promise.all(signers.map((s) => rep(s.address)))
    await certifyAndSettle(passed.jobId, passed.committee, signers, 7)
    expect(await rep(E.address)).toBe(0)
    expect(await admitted()).toBe(false)
    // The signers still earn their pass.
    expect(await Promise.all(signers.map((s) => rep(s.address)))).toEqual(before.map((r) => r + 1))
  }, 240_000)
})
