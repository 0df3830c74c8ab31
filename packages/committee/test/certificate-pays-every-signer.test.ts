/**
 * A member that signed the decision is paid and rewarded for it: the certificate carries every
 * commit its builder holds (sorted, one per member), not the first 2f+1 by address, and the hub
 * pays and rewards every signer it names. Before, `buildCertificate` cut the commits to 2f+1, so
 * with all four of n = 4 committed the member with the highest address was always left out. On a
 * real anvil: the committee's own commit votes (`signVote`), `buildCertificate`,
 * `certificateCall`, the hub's `submitCertificate` and `settle`.
 */
import { privateKeySigner } from '@digicap/capsule-core'
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildCertificate,
  certificateCall,
  pbftCommittee,
  pbftDomain,
  signVote,
} from '../src/index.ts'
import {
  EXECUTOR_BPS,
  FEE,
  type HubWorld,
  openJob,
  sent,
  startHubWorld,
  VERIFIER_BPS,
} from './hub-world.ts'

let w: HubWorld
beforeAll(async () => {
  w = await startHubWorld([4], 4)
}, 240_000)
afterAll(() => w?.anvil.stop())

describe('the certificate names every member that committed', () => {
  it('all four members of n = 4 commit: all four are paid a share and gain a pass', async () => {
    const members = w.verifiers.slice(0, 4)
    const { jobId, committee } = await openJob(w, 4, members)
    const { hub, hubAddress } = w.hubs.get(4)!
    const domain = pbftDomain(w.chainId, hubAddress)
    const keys = members.map((m) => privateKeySigner(getBytes(m.privateKey)))
    const paper = pbftCommittee(keys.map((k, i) => ({ address: k.address, peerId: `peer-${i}` })))
    const value = { verdict: 7, evidenceHash: new Uint8Array(32).fill(7) }
    const commits = await Promise.all(
      keys.map(async (k) => ({
        signer: k.address,
        vote: await signVote(k, domain, {
          phase: 'commit',
          jobId: getBytes(jobId),
          view: 0n,
          preparedView: 0n,
          ...value,
        }),
      })),
    )
    const cert = buildCertificate(domain, paper, commits)
    expect(cert.signers).toHaveLength(4)
    const call = certificateCall(cert, committee as `0x${string}`[])
    expect(call.others).toEqual([])
    const ac = w.c.accessController
    const credits0 = await Promise.all(committee.map((m) => ac.credits(m)))
    const reps0 = await Promise.all(committee.map((m) => w.c.nodeRegistry.reputationOf(m)))
    await sent(hub.submitCertificate(call.value, call.signerBits, call.others, call.signatures))
    await sent(hub.settle(jobId, committee))
    const share = (FEE * VERIFIER_BPS) / 10_000n / 4n
    const credits = await Promise.all(committee.map((m) => ac.credits(m)))
    expect(credits.map((c, i) => c - credits0[i]!)).toEqual([share, share, share, share])
    const reps = await Promise.all(committee.map((m) => w.c.nodeRegistry.reputationOf(m)))
    expect(reps.map((r, i) => r - reps0[i]!)).toEqual([1n, 1n, 1n, 1n])
    // The executor's share is unchanged by how many signed.
    expect(EXECUTOR_BPS).toBe(1000n)
  }, 240_000)
})
