/**
 * ADR 0096: a reporter's share cannot be front-run. On a real anvil with the settlement deployed
 * as production does, and a real mempool (automine off while the copier acts): a bot that sees
 * a report pending copies its calldata with a higher tip, so its copy is mined first.
 * - A report in the clear (`reportEquivocation`) still convicts, but pays no one: on the
 *   contracts before ADR 0096 the copier took the share (it was paid to `msg.sender`).
 * - A committed report's reveal, copied, pays the reporter the commitment named, not the copier;
 *   the copier's own version naming itself is `ReportNotCommitted`, and a commitment it makes
 *   on seeing the reveal is `RevealTooEarly`.
 * - The honest reporter's commit–reveal pays it; the hub's commitment is the committee
 *   package's (`reportCommitment`).
 */
import { privateKeySigner } from '@digicap/capsule-core'
import type { PbftVote } from '@digicap/protocol'
import { getBytes, hexlify, parseEther, randomBytes, Transaction, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type EquivocationProof,
  equivocationReveal,
  pbftDomain,
  reportCommitment,
  signVote,
} from '../src/index.ts'
import {
  EQUIVOCATION_SLASH,
  type HubWorld,
  mine,
  openJob,
  REPORTER_BPS,
  REVEAL_DELAY,
  revertOf,
  STAKE,
  sent,
  startHubWorld,
} from './hub-world.ts'

let w: HubWorld
const SHARE = (EQUIVOCATION_SLASH * REPORTER_BPS) / 10_000n

beforeAll(async () => {
  w = await startHubWorld([4], 12)
}, 240_000)
afterAll(() => w?.anvil.stop())

const hubOf = () => w.hubs.get(4)!.hub
const payout = (a: string) => w.c.nodeRegistry.payouts(a)
const stakeOf = async (a: string) => (await w.c.nodeRegistry.getNode(a)).stake

function vote(member: Wallet, round: string, verdict: number): Promise<PbftVote> {
  return signVote(
    privateKeySigner(getBytes(member.privateKey)),
    pbftDomain(w.chainId, w.hubs.get(4)!.hubAddress),
    {
      phase: 'prepare',
      jobId: getBytes(round),
      view: 1n,
      preparedView: 0n,
      verdict,
      evidenceHash: getBytes(hexlify(randomBytes(32))),
    },
  )
}

async function fresh(): Promise<Wallet> {
  const a = new Wallet(hexlify(randomBytes(32)), w.anvil.provider)
  await sent(w.deployer.sendTransaction({ to: a.address, value: parseEther('0.1') }))
  return a
}

/** A seated job (the executor topped up) and a proof of its first member's equivocation. */
async function equivocation(members: Wallet[]) {
  const n = await w.c.nodeRegistry.getNode(w.executor.address)
  if (n.stake < STAKE) {
    const nr = w.c.nodeRegistry.connect(w.executor) as typeof w.c.nodeRegistry
    await sent(nr.addStake({ value: STAKE - n.stake }))
  }
  const { jobId, committee } = await openJob(w, 4, members)
  const liar = members[0]!
  const proof: EquivocationProof = {
    member: liar.address as `0x${string}`,
    a: await vote(liar, jobId, 7),
    b: await vote(liar, jobId, 5),
  }
  return { jobId, committee, liar, proof }
}

/**
 * The mempool: `victim` is sent with automine off; the copier reads it from the pending pool and
 * sends `copy(data)` with twice the tip, and a builder that orders by tip mines the copy first
 * (played here by taking the victim's transaction out of the pool until the copy is mined, then
 * putting its signed bytes back). Receipts.
 */
async function frontRun(victim: Wallet, data: string, copier: Wallet, copy = (d: string) => d) {
  const hub = w.hubs.get(4)!.hubAddress
  const provider = w.anvil.provider
  const fee = await provider.getFeeData()
  const tip = fee.maxPriorityFeePerGas ?? 1_000_000_000n
  const maxFee = (fee.maxFeePerGas ?? 10_000_000_000n) * 4n
  const gasLimit = 1_000_000n
  await provider.send('evm_setAutomine', [false])
  try {
    const sentByVictim = await victim.sendTransaction({
      to: hub,
      data,
      gasLimit,
      maxPriorityFeePerGas: tip,
      maxFeePerGas: maxFee,
    })
    const pending = await provider.getTransaction(sentByVictim.hash)
    const raw = Transaction.from(pending!).serialized
    await provider.send('anvil_dropTransaction', [sentByVictim.hash])
    const sentByCopier = await copier.sendTransaction({
      to: hub,
      data: copy(pending!.data),
      gasLimit,
      maxPriorityFeePerGas: tip * 2n,
      maxFeePerGas: maxFee,
    })
    await mine(w, 1)
    await provider.send('eth_sendRawTransaction', [raw])
    await mine(w, 1)
    const [v, c] = await Promise.all(
      [sentByVictim.hash, sentByCopier.hash].map((h) => provider.getTransactionReceipt(h)),
    )
    expect(c!.blockNumber).toBeLessThan(v!.blockNumber) // the copy was mined first
    return { victim: v!, copier: c! }
  } finally {
    await provider.send('evm_setAutomine', [true])
  }
}

describe('ADR 0096: the reporter’s share and a mempool copier', () => {
  it('a report in the clear, copied with a higher tip, convicts but pays the copier nothing', async () => {
    const hub = hubOf()
    const { jobId, committee, liar, proof } = await equivocation(w.verifiers.slice(0, 4))
    const [R, W] = [await fresh(), await fresh()]
    const { a, b } = equivocationReveal(proof, R.address as `0x${string}`, randomBytes(32))
    const stake0 = await stakeOf(liar.address)
    const data = hub.interface.encodeFunctionData('reportEquivocation', [jobId, committee, a, b])
    const r = await frontRun(R, data, W)
    expect(r.copier.status).toBe(1) // the copy convicted …
    expect(r.victim.status).toBe(0) // … and the original was AlreadyConvicted
    console.log(`ADR 0096 gas: reportEquivocation in the clear (all burned) ${r.copier.gasUsed}`)
    expect(stake0 - (await stakeOf(liar.address))).toBe(EQUIVOCATION_SLASH)
    expect(await payout(W.address)).toBe(0n) // the share, on the contracts before ADR 0096
    expect(await payout(R.address)).toBe(0n)
  }, 240_000)

  it('a committed reveal, copied, pays the committed reporter; the copier gets nothing', async () => {
    const hub = hubOf()
    const { jobId, committee, liar, proof } = await equivocation(w.verifiers.slice(4, 8))
    const [R, W] = [await fresh(), await fresh()]
    const reveal = equivocationReveal(proof, R.address as `0x${string}`, randomBytes(32))
    // The hub hashes as the committee package does.
    expect(
      await hub.reportCommitment(jobId, reveal.a, reveal.b, reveal.reporter, reveal.salt),
    ).toBe(
      reportCommitment(getBytes(jobId), reveal.a, reveal.b, reveal.reporter, getBytes(reveal.salt)),
    )
    await sent((hub.connect(R) as typeof hub).commitReport(reveal.commitment))
    await mine(w, Number(REVEAL_DELAY))
    const data = hub.interface.encodeFunctionData('revealEquivocation', [
      jobId,
      committee,
      reveal.a,
      reveal.b,
      reveal.reporter,
      reveal.salt,
    ])

    // The copier's own version, naming itself: no such commitment.
    const own = hub.interface.encodeFunctionData('revealEquivocation', [
      jobId,
      committee,
      reveal.a,
      reveal.b,
      W.address,
      reveal.salt,
    ])
    const ownCommitment = reportCommitment(
      getBytes(jobId),
      reveal.a,
      reveal.b,
      W.address as `0x${string}`,
      getBytes(reveal.salt),
    )
    expect(await revertOf(w, W.call({ to: await hub.getAddress(), data: own }))).toBe(
      `ReportNotCommitted(${ownCommitment})`,
    )
    // Committing to it on seeing the reveal is too late: its reveal is refused until K blocks on.
    await sent((hub.connect(W) as typeof hub).commitReport(ownCommitment))
    const at = await hub.reportCommits(ownCommitment)
    expect(await revertOf(w, W.call({ to: await hub.getAddress(), data: own }))).toBe(
      `RevealTooEarly(${ownCommitment},${at + REVEAL_DELAY})`,
    )

    // The copy of the reveal itself, mined before it.
    const stake0 = await stakeOf(liar.address)
    const r = await frontRun(R, data, W)
    expect(r.copier.status).toBe(1)
    expect(r.victim.status).toBe(0)
    expect(stake0 - (await stakeOf(liar.address))).toBe(EQUIVOCATION_SLASH)
    expect(await payout(R.address)).toBe(SHARE) // the committed reporter is paid …
    expect(await payout(W.address)).toBe(0n) // … whoever sent the reveal
    const proven = r.copier.logs
      .map((l) => hub.interface.parseLog(l))
      .find((e) => e?.name === 'EquivocationProven')
    expect([proven?.args[5], proven?.args[6]]).toEqual([R.address, SHARE])
    expect(await hub.reportCommits(reveal.commitment)).toBe(0n) // cleared
  }, 240_000)

  it('the honest commit–reveal pays the reporter; a reveal before K blocks is RevealTooEarly', async () => {
    const hub = hubOf()
    const { jobId, committee, liar, proof } = await equivocation(w.verifiers.slice(8, 12))
    const R = await fresh()
    const h = hub.connect(R) as typeof hub
    const reveal = equivocationReveal(proof, R.address as `0x${string}`, randomBytes(32))
    const args = [jobId, committee, reveal.a, reveal.b, reveal.reporter, reveal.salt] as const
    const c = await sent(h.commitReport(reveal.commitment))
    const readyAt = BigInt(c.blockNumber) + REVEAL_DELAY
    // The next block is committedAt + 1 < readyAt.
    expect(await revertOf(w, h.revealEquivocation(...args))).toBe(
      `RevealTooEarly(${reveal.commitment},${readyAt})`,
    )
    // A commitment made again keeps its first block.
    await sent(h.commitReport(reveal.commitment))
    expect(await hub.reportCommits(reveal.commitment)).toBe(BigInt(c.blockNumber))
    await mine(w, Number(REVEAL_DELAY))
    const stake0 = await stakeOf(liar.address)
    const r = await sent(h.revealEquivocation(...args))
    console.log(`ADR 0096 gas: commitReport ${c.gasUsed}, revealEquivocation ${r.gasUsed}`)
    expect(stake0 - (await stakeOf(liar.address))).toBe(EQUIVOCATION_SLASH)
    expect(await payout(R.address)).toBe(SHARE)
  }, 240_000)
})
