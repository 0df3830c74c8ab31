/**
 * A grant is settled by one hub only (ADR 0068): the first hub that opens its job takes the grant
 * in the AccessController (`settlerOf`), fee or not, and every other hub is refused. Before, a
 * grant that paid no fee (nothing escrowed) could be opened and settled on every hub: one run,
 * several reputation passes. On a real anvil with two hubs (4 and 7 seats).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  byAddress,
  certificate,
  certificateValue,
  domainOf,
  FEE,
  grant,
  type HubWorld,
  openJob,
  revertOf,
  sent,
  startHubWorld,
} from './hub-world.ts'

let w: HubWorld
beforeAll(async () => {
  w = await startHubWorld([4, 7], 8)
}, 240_000)
afterAll(() => w?.anvil.stop())

const rep = async (a: string) => Number(await w.c.nodeRegistry.reputationOf(a))

describe('one hub per grant', () => {
  it('a fee-0 grant opened on one hub is refused by the other, and its run earns one pass', async () => {
    const E = w.executor
    const id = await grant(w, w.attestedCapsule, 0n)
    const r0 = await rep(E.address)
    const members = w.verifiers.slice(0, 4)
    const job = await openJob(w, 4, members, { grantId: id })
    const first = w.hubs.get(4)!.hubAddress
    expect(await w.c.accessController.settlerOf(id)).toBe(first)
    expect(await revertOf(w, w.hubs.get(7)!.hub.openJob.staticCall(id))).toBe(
      `GrantTaken(${id},${first})`,
    )
    const value = certificateValue(id, 7)
    const signers = members.toSorted(byAddress).slice(0, 3)
    const c = await certificate(job.committee, signers, value, domainOf(w, 4))
    const { hub } = w.hubs.get(4)!
    await sent(hub.submitCertificate(value, c.bits, c.others, c.signatures))
    await sent(hub.settle(id, job.committee))
    expect(await rep(E.address)).toBe(r0 + 1)
  }, 240_000)

  it('a paid grant opened on one hub is refused by the other', async () => {
    const id = await grant(w, w.attestedCapsule, FEE)
    await sent(w.hubs.get(7)!.hub.openJob(id))
    expect(await w.c.accessController.settlerOf(id)).toBe(w.hubs.get(7)!.hubAddress)
    expect(await revertOf(w, w.hubs.get(4)!.hub.openJob.staticCall(id))).toBe(
      `EscrowNotHeld(${id},2)`,
    )
  }, 240_000)
})
