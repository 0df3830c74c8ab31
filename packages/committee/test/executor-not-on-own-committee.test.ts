/**
 * The executor of a job cannot sit on the committee that judges its run: the hub passes the
 * grant's executor to `CommitteeSortition.openJob`, and `submitTicket` refuses that node's ticket
 * (`IsExecutor`). Before, an executor that was also a verifier could be seated, sign its own pass
 * and be paid twice (as a signer and as the executor). On a real anvil with the settlement
 * deployed as production does, a real VRF ticket.
 */
import { onchainProof } from '@digicap/vrf'
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { drawTicket, jobSeed } from '../src/index.ts'
import { grant, type HubWorld, mine, openJob, revertOf, sent, startHubWorld } from './hub-world.ts'

let w: HubWorld
beforeAll(async () => {
  w = await startHubWorld([4], 4)
}, 240_000)
afterAll(() => w?.anvil.stop())

describe("the executor is not on its own job's committee", () => {
  it("refuses the executor's ticket (it is also an active verifier) and seats the others", async () => {
    const E = w.executor
    const nr = w.c.nodeRegistry.connect(E) as typeof w.c.nodeRegistry
    const node = await w.c.nodeRegistry.getNode(E.address)
    await sent(nr.update(node.peerId, node.attestationKeyHash, 3)) // executor + verifier
    expect(await w.c.nodeRegistry.isActive(E.address, 2)).toBe(true)
    const { hub, sortition } = w.hubs.get(4)!
    const grantId = await grant(w)
    const opened = await sent(hub.openJob(grantId))
    expect(await sortition.executorOf(grantId)).toBe(E.address)
    await mine(w, 1)
    const block = await w.anvil.provider.getBlock(opened.blockNumber)
    const seed = jobSeed(getBytes(grantId), getBytes(block!.hash!))
    const t = drawTicket(getBytes(E.privateKey), seed)
    const args = onchainProof(t.publicKey, seed, t.proof)
    const asE = sortition.connect(E) as typeof sortition
    expect(
      await revertOf(
        w,
        asE.submitTicket.staticCall(grantId, args.publicKey as never, args.proof as never),
      ),
    ).toBe(`IsExecutor(${grantId},${E.address})`)
    // A job of another grant (by the same executor) seats its verifiers as before.
    const other = await openJob(w, 4, w.verifiers.slice(0, 4))
    expect(other.committee).not.toContain(E.address)
    expect(other.committee).toHaveLength(4)
  }, 240_000)
})
