import { connectDigicap, deployDigicap } from '@digicap/contracts'
import { compileSolidity } from '@digicap/contracts/compiler'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { onchainProof } from '@digicap/vrf'
import {
  type BaseContract,
  ContractFactory,
  getBytes,
  hexlify,
  type Interface,
  parseEther,
  randomBytes,
  type Wallet,
  ZeroAddress,
} from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  canBeSeated,
  cutoffHistory,
  drawCommittee,
  drawTicket,
  jobSeed,
  MIN_SORTITION_WEIGHT,
  reputationAfter,
  selectionWeight,
  sortitionScore,
  type TicketChain,
  ticketWave,
  ticketWaves,
  waitForWave,
} from '../src/index.ts'
import { committeeSources } from './contracts.ts'

const ROLE_VERIFIER = 2
const WINDOW = 8

type Pair = readonly [bigint, bigint]
type Method<A extends unknown[], R> = ((...args: A) => Promise<R>) & {
  staticCall(...args: A): Promise<unknown>
}
type Sortition = BaseContract & {
  openJob: Method<[string, string], { wait(): Promise<{ blockNumber: number }> }>
  submitTicket: Method<
    [string, Pair, unknown, { gasLimit: bigint }?],
    { wait(): Promise<{ gasUsed: bigint; logs: unknown[] }> }
  >
  committeeOf(jobId: string): Promise<[string[], boolean]>
  cutoffOf(jobId: string): Promise<[boolean, bigint, boolean]>
  grantBlockOf(jobId: string): Promise<bigint>
  seedOf(jobId: string): Promise<string>
}

let anvil: Anvil
let sortition: Sortition
let iface: Interface
let verifiers: { wallet: Wallet; stake: bigint }[]
let factory: ContractFactory
let registryAddress: string
let registry: ReturnType<typeof connectDigicap>['nodeRegistry']

beforeAll(async () => {
  anvil = await startAnvil()
  const [deployer, ...rest] = anvil.signers as Wallet[]
  const addresses = await deployDigicap(deployer!, { minStake: parseEther('0.01') })
  const { nodeRegistry } = connectDigicap(addresses, deployer!)
  registry = nodeRegistry
  verifiers = rest
    .slice(0, 7)
    .map((wallet, i) => ({ wallet, stake: parseEther('0.01') * BigInt(1 + i) }))
  for (const v of verifiers)
    await (
      await (nodeRegistry.connect(v.wallet) as typeof nodeRegistry).register(
        hexlify(randomBytes(38)),
        hexlify(randomBytes(32)),
        ROLE_VERIFIER,
        { value: v.stake },
      )
    ).wait()
  const c = compileSolidity(committeeSources())[
    '@digicap/contracts/committee/CommitteeSortition.sol'
  ]!.CommitteeSortition!
  factory = new ContractFactory(c.abi as never, c.bytecode, deployer!)
  registryAddress = addresses.nodeRegistry
  const deployed = await factory.deploy(addresses.nodeRegistry, deployer!.address, WINDOW, 4)
  await deployed.waitForDeployment()
  sortition = deployed as unknown as Sortition
  iface = deployed.interface
}, 120_000)
afterAll(() => anvil?.stop())

/** The contract with `wallet` as the sender. */
const as = (wallet: Wallet): Sortition => sortition.connect(wallet) as unknown as Sortition

async function revertOf(call: Promise<unknown>): Promise<string> {
  try {
    await call
  } catch (err) {
    const data = (err as { data?: string }).data
    const parsed = data ? iface.parseError(data) : null
    if (parsed) return parsed.name
    throw err
  }
  throw new Error('call did not revert')
}

async function openJob(): Promise<{ jobId: string; seed: Uint8Array }> {
  const jobId = hexlify(randomBytes(32))
  // No executor among these verifiers: the job's executor is refused a seat (IsExecutor).
  const receipt = await (await sortition.openJob(jobId, ZeroAddress)).wait()
  await anvil.provider.send('evm_mine', [])
  const block = await anvil.provider.getBlock(receipt.blockNumber)
  return { jobId, seed: jobSeed(getBytes(jobId), getBytes(block!.hash!)) }
}

function ticketOf(wallet: Wallet, seed: Uint8Array) {
  const t = drawTicket(getBytes(wallet.privateKey), seed)
  return { ...t, onchain: onchainProof(t.publicKey, seed, t.proof) }
}

describe('CommitteeSortition on a real anvil with the NodeRegistry', () => {
  it('seats the same committee, in the same order, as drawCommittee in TypeScript', async () => {
    const { jobId, seed } = await openJob()
    expect(await sortition.seedOf(jobId)).toBe(hexlify(seed))
    const gas: bigint[] = []
    const tickets = []
    for (const v of verifiers) {
      const t = ticketOf(v.wallet, seed)
      const receipt = await (
        await as(v.wallet).submitTicket(jobId, t.onchain.publicKey, t.onchain.proof)
      ).wait()
      gas.push(receipt.gasUsed)
      tickets.push({ id: v.wallet.address, beta: t.beta, weight: selectionWeight(v.stake, 100n) })
    }
    const [members] = await sortition.committeeOf(jobId)
    expect(members).toEqual(drawCommittee(tickets).map((t) => t.id))
    console.log(`submitTicket gas (7 verifiers, real transactions): ${gas.join(', ')}`)
    // The VRF check is ~40k of it; the rest is the NodeRegistry reads and one storage slot per seat.
    for (const g of gas) expect(g).toBeLessThanOrEqual(250_000n)
  })

  it('refuses a window of 0 or over 256 blocks and a committee size that is not 3f + 1 (≤ 31)', async () => {
    const opener = anvil.accounts[0]!
    for (const [window, seats] of [
      [0, 4],
      [257, 4],
      [8, 0],
      [8, 5],
      [8, 34],
    ] as const) {
      const tx = await factory.getDeployTransaction(registryAddress, opener, window, seats)
      expect(await revertOf(anvil.provider.call({ ...tx, from: opener }))).toBe('InvalidParameters')
    }
  })

  it('refuses another node’s key, a second ticket, a non-verifier, a tampered proof and late tickets', async () => {
    const { jobId, seed } = await openJob()
    const [a, b] = verifiers
    const ta = ticketOf(a!.wallet, seed)
    expect(
      await revertOf(
        as(b!.wallet).submitTicket.staticCall(jobId, ta.onchain.publicKey, ta.onchain.proof),
      ),
    ).toBe('NotKeyOwner')
    expect(
      await revertOf(
        as(a!.wallet).submitTicket.staticCall(jobId, ta.onchain.publicKey, {
          ...ta.onchain.proof,
          c: ta.onchain.proof.c ^ 1n,
        }),
      ),
    ).toBe('VrfWitnessMismatch')
    // A ticket for another seed (a luckier job) does not pass for this one.
    const other = ticketOf(a!.wallet, jobSeed(randomBytes(32), randomBytes(32)))
    expect(
      await revertOf(
        as(a!.wallet).submitTicket.staticCall(jobId, other.onchain.publicKey, other.onchain.proof),
      ),
    ).toBe('VrfWitnessMismatch')
    await (await as(a!.wallet).submitTicket(jobId, ta.onchain.publicKey, ta.onchain.proof)).wait()
    expect(
      await revertOf(
        as(a!.wallet).submitTicket.staticCall(jobId, ta.onchain.publicKey, ta.onchain.proof),
      ),
    ).toBe('AlreadySeated')
    const stranger = anvil.signers[9] as Wallet
    const ts = ticketOf(stranger, seed)
    expect(
      await revertOf(
        as(stranger).submitTicket.staticCall(jobId, ts.onchain.publicKey, ts.onchain.proof),
      ),
    ).toBe('NotEligible')
    await anvil.provider.send('anvil_mine', [`0x${WINDOW.toString(16)}`])
    const tb = ticketOf(b!.wallet, seed)
    expect(
      await revertOf(
        as(b!.wallet).submitTicket.staticCall(jobId, tb.onchain.publicKey, tb.onchain.proof),
      ),
    ).toBe('OutsideWindow')
    const [members, closed] = await sortition.committeeOf(jobId)
    expect(closed).toBe(true)
    expect(members).toEqual([a!.wallet.address])
    expect(await revertOf(as(a!.wallet).openJob.staticCall(jobId, ZeroAddress))).toBe('NotOpener')
  })
  it("refuses the job's executor a seat, however good its ticket", async () => {
    const [a] = verifiers
    const jobId = hexlify(randomBytes(32))
    const receipt = await (await sortition.openJob(jobId, a!.wallet.address)).wait()
    await anvil.provider.send('evm_mine', [])
    const block = await anvil.provider.getBlock(receipt.blockNumber)
    const seed = jobSeed(getBytes(jobId), getBytes(block!.hash!))
    const ta = ticketOf(a!.wallet, seed)
    expect(
      await revertOf(
        as(a!.wallet).submitTicket.staticCall(jobId, ta.onchain.publicKey, ta.onchain.proof),
      ),
    ).toBe('IsExecutor')
  })
  it('takes tickets from a weight of 2⁴¹ (MIN_WEIGHT) on, and stores such seats’ scores whole', async () => {
    // A registry that lets a node stake a few thousand wei: only the sortition's floor refuses it.
    const [deployer] = anvil.signers as Wallet[]
    const tiny = await deployDigicap(deployer!, { minStake: 1n })
    const tinyRegistry = connectDigicap(tiny, deployer!).nodeRegistry
    const floor = factory.attach(
      await (await factory.deploy(tiny.nodeRegistry, deployer!.address, WINDOW, 4)).getAddress(),
    ) as unknown as Sortition & { MIN_WEIGHT(): Promise<bigint> }
    expect(await floor.MIN_WEIGHT()).toBe(MIN_SORTITION_WEIGHT)
    // Reputation starts at 1, so each weight is the stake: one wei short of the floor for the first.
    const nodes = (anvil.signers as Wallet[]).slice(5, 9)
    for (const [i, node] of nodes.entries()) {
      const asNode = tinyRegistry.connect(node) as typeof tinyRegistry
      await (
        await asNode.register(hexlify(randomBytes(38)), hexlify(randomBytes(32)), ROLE_VERIFIER, {
          value: MIN_SORTITION_WEIGHT - (i === 0 ? 1n : 0n),
        })
      ).wait()
    }
    const jobId = hexlify(randomBytes(32))
    const opened = await (await floor.openJob(jobId, ZeroAddress)).wait()
    await anvil.provider.send('evm_mine', [])
    const block = await anvil.provider.getBlock(opened.blockNumber)
    const seed = jobSeed(getBytes(jobId), getBytes(block!.hash!))
    const tickets = nodes.map((node) => ({ node, t: ticketOf(node, seed) }))
    const send = (i: number) =>
      (floor.connect(tickets[i]!.node) as unknown as Sortition).submitTicket
    const first = tickets[0]!.t
    expect(
      await revertOf(send(0).staticCall(jobId, first.onchain.publicKey, first.onchain.proof)),
    ).toBe('NotEligible')
    await (
      await (tinyRegistry.connect(nodes[0]!) as typeof tinyRegistry).addStake({ value: 1n })
    ).wait()
    for (const [i, { t }] of tickets.entries())
      await (await send(i)(jobId, t.onchain.publicKey, t.onchain.proof)).wait()
    // The last seat's stored score is the TypeScript score at weight 2⁴¹, not cut to 96 bits.
    const scores = tickets.map(({ t }) => sortitionScore(t.beta, MIN_SORTITION_WEIGHT))
    const last = scores.reduce((a, b) => (a > b ? a : b))
    const [full, score] = await floor.cutoffOf(jobId)
    expect(full).toBe(true)
    expect(score).toBe(last)
    expect(last < 1n << 96n).toBe(true)
  })
})

describe('ticket waves on chain (ADR 0065): cutoffOf, and tickets left unsent', () => {
  /** Each verifier's ticket for `seed`, scored with the weight the contract will read. */
  async function scoredTickets(seed: Uint8Array) {
    return Promise.all(
      verifiers.map(async (v) => {
        const n = await registry.getNode(v.wallet.address)
        const weight = selectionWeight(BigInt(n.stake), BigInt(n.reputation))
        const t = ticketOf(v.wallet, seed)
        return { v, t, weight, score: sortitionScore(t.beta, weight) }
      }),
    )
  }

  /**
   * Sends the tickets wave by wave, each wave's tickets in one block, a ticket only if `cutoffOf`
   * says it can still be seated: the contract's side of the rule (a node's own timing, margin and
   * reads are `waitForWave`'s, tested below). Returns who sent.
   */
  async function runWaves(
    jobId: string,
    tickets: Awaited<ReturnType<typeof scoredTickets>>,
    reference: bigint | undefined,
  ): Promise<{ sent: string[]; skipped: string[] }> {
    const waves = ticketWaves(WINDOW)
    const sent: string[] = []
    const skipped: string[] = []
    await anvil.provider.send('evm_setAutomine', [false])
    try {
      for (let wave = 0; wave < waves; wave++) {
        const [full, score] = await sortition.cutoffOf(jobId)
        const pending = []
        for (const x of tickets) {
          if (ticketWave(x.score, reference, { waves }) !== wave) continue
          if (!canBeSeated(x.score, { full, score })) {
            skipped.push(x.v.wallet.address)
            continue
          }
          sent.push(x.v.wallet.address)
          pending.push(
            as(x.v.wallet).submitTicket(jobId, x.t.onchain.publicKey, x.t.onchain.proof, {
              gasLimit: 400_000n,
            }),
          )
        }
        const txs = await Promise.all(pending)
        await anvil.provider.send('evm_mine', [])
        for (const tx of txs) await tx.wait()
      }
    } finally {
      await anvil.provider.send('evm_setAutomine', [true])
    }
    return { sent, skipped }
  }

  it('cutoffOf: not full, then the last seat’s score, then closed', async () => {
    const { jobId, seed } = await openJob()
    expect([...(await sortition.cutoffOf(jobId))]).toEqual([false, 0n, false])
    const tickets = await scoredTickets(seed)
    for (const x of tickets.slice(0, 3))
      await (
        await as(x.v.wallet).submitTicket(jobId, x.t.onchain.publicKey, x.t.onchain.proof)
      ).wait()
    expect([...(await sortition.cutoffOf(jobId))]).toEqual([false, 0n, false])
    for (const x of tickets.slice(3))
      await (
        await as(x.v.wallet).submitTicket(jobId, x.t.onchain.publicKey, x.t.onchain.proof)
      ).wait()
    const fourth = [...tickets].sort((a, b) => (a.score < b.score ? -1 : 1))[3]!.score
    expect([...(await sortition.cutoffOf(jobId))]).toEqual([true, fourth, false])
    await anvil.provider.send('anvil_mine', [`0x${WINDOW.toString(16)}`])
    expect([...(await sortition.cutoffOf(jobId))]).toEqual([true, fourth, true])
  })

  it('a reference at the 4th score sends 4 tickets, leaves 3 unsent, and seats what all 7 would have', async () => {
    const { jobId, seed } = await openJob()
    const tickets = await scoredTickets(seed)
    const ranked = [...tickets].sort((a, b) => (a.score < b.score ? -1 : 1))
    // margin 2 puts rank 5 in wave 0 only when it scores under twice the 4th: give the 4th itself,
    // halved, so that every ticket above it waits at least one wave.
    const { sent, skipped } = await runWaves(jobId, tickets, (ranked[3]!.score + 1n) / 2n)
    const all = drawCommittee(
      tickets.map((x) => ({ id: x.v.wallet.address, beta: x.t.beta, weight: x.weight })),
    ).map((t) => t.id)
    const [members] = await sortition.committeeOf(jobId)
    expect(members).toEqual(all)
    expect(sent.sort()).toEqual([...all].sort())
    expect(skipped.sort()).toEqual(
      ranked
        .slice(4)
        .map((x) => x.v.wallet.address)
        .sort(),
    )
  })

  it('a reference far too low only delays: every ticket goes in the last wave (the contract’s side), the committee is unchanged', async () => {
    const { jobId, seed } = await openJob()
    const tickets = await scoredTickets(seed)
    const lowest = tickets.reduce((m, x) => (x.score < m ? x.score : m), tickets[0]!.score)
    const { sent, skipped } = await runWaves(jobId, tickets, lowest / 2n ** 20n)
    for (const x of tickets)
      expect(ticketWave(x.score, lowest / 2n ** 20n, { waves: ticketWaves(WINDOW) })).toBe(
        ticketWaves(WINDOW) - 1,
      )
    expect(skipped).toEqual([])
    expect(sent.length).toBe(7)
    const [members] = await sortition.committeeOf(jobId)
    expect(members).toEqual(
      drawCommittee(
        tickets.map((x) => ({ id: x.v.wallet.address, beta: x.t.beta, weight: x.weight })),
      ).map((t) => t.id),
    )
  })
})

describe('a verifier’s waitForWave and cutoffHistory against the contracts (ADR 0065)', () => {
  const chain: TicketChain = {
    blockNumber: () => anvil.provider.getBlockNumber(),
    async standing(address) {
      const n = await registry.getNode(address)
      return { stake: BigInt(n.stake), reputation: BigInt(n.reputation) }
    },
    async cutoff(jobId) {
      const [full, score, closed] = await sortition.cutoffOf(hexlify(jobId))
      return { full, score, closed }
    },
    async seats(jobId) {
      const [members] = await sortition.committeeOf(hexlify(jobId))
      return { members }
    },
  }
  async function untilBlock(block: number): Promise<void> {
    while ((await anvil.provider.getBlockNumber()) <= block)
      await new Promise((r) => setTimeout(r, 20))
  }
  /** Every node's ticket, scored with its weight now, the 4th lowest score, and the full ranking. */
  async function scored(seed: Uint8Array) {
    const all = await Promise.all(
      verifiers.map(async (v) => {
        const { stake, reputation } = await chain.standing(v.wallet.address)
        const t = ticketOf(v.wallet, seed)
        return { v, t, stake, reputation, score: sortitionScore(t.beta, stake * reputation) }
      }),
    )
    return [...all].sort((a, b) => (a.score < b.score ? -1 : 1))
  }
  /**
   * Runs every node's waitForWave at once, sending where it says so, with automine off and a
   * block every second: a wave's tickets must land in the block after their wave starts, and on a
   * loaded CI box sending one took longer than the 400 ms blocks this once had (a wave-1 node then
   * saw free seats and sent: more gas, the same committee, but not what the test asserts).
   */
  async function runNodes(
    jobId: string,
    grantBlock: number,
    ranked: Awaited<ReturnType<typeof scored>>,
    history: Parameters<typeof waitForWave>[0]['history'],
    passesAhead?: number,
  ) {
    await anvil.provider.send('evm_setAutomine', [false])
    const miner = setInterval(() => void anvil.provider.send('evm_mine', []).catch(() => {}), 1000)
    try {
      return await Promise.all(
        ranked.map(async (x) => {
          const plan = await waitForWave({
            chain,
            self: x.v.wallet.address,
            jobId: getBytes(jobId),
            beta: x.t.beta,
            grantBlock,
            lastBlock: grantBlock + WINDOW,
            history,
            untilBlock,
            ...(passesAhead === undefined ? {} : { passesAhead }),
          })
          if (plan.send) {
            const tx = await as(x.v.wallet).submitTicket(
              jobId,
              x.t.onchain.publicKey,
              x.t.onchain.proof,
              {
                gasLimit: 400_000n,
              },
            )
            await tx.wait()
          }
          return { x, plan }
        }),
      )
    } finally {
      clearInterval(miner)
      await anvil.provider.send('evm_setAutomine', [true])
    }
  }
  async function openAt(): Promise<{ jobId: string; seed: Uint8Array; grantBlock: number }> {
    const { jobId, seed } = await openJob()
    return { jobId, seed, grantBlock: Number(await sortition.grantBlockOf(jobId)) }
  }

  it('cutoffHistory reads a job only once it closed, counts it once however many calls overlap, and gives its last seat', async () => {
    const { jobId, seed, grantBlock } = await openAt()
    const ranked = await scored(seed)
    for (const x of ranked)
      await (
        await as(x.v.wallet).submitTicket(jobId, x.t.onchain.publicKey, x.t.onchain.proof)
      ).wait()
    let reads = 0
    const history = cutoffHistory({
      cutoff: (id) => {
        reads++
        return chain.cutoff(id)
      },
    })
    history.watch(getBytes(jobId), grantBlock + WINDOW)
    expect(await history.reference(await anvil.provider.getBlockNumber())).toBeUndefined()
    await anvil.provider.send('anvil_mine', [`0x${WINDOW.toString(16)}`])
    const head = await anvil.provider.getBlockNumber()
    const refs = await Promise.all([1, 2, 3].map(() => history.reference(head)))
    expect(refs).toEqual([ranked[3]!.score, ranked[3]!.score, ranked[3]!.score])
    expect(history.size).toBe(1)
    expect(reads).toBe(1)
  })

  it('seven nodes at once, reference at half the 4th score, no passes ahead: the 4 best send in wave 0, the other 3 see full seats and keep their gas', async () => {
    const { jobId, seed, grantBlock } = await openAt()
    const ranked = await scored(seed)
    const fixed = { watch() {}, reference: async () => (ranked[3]!.score + 1n) / 2n, size: 1 }
    const out = await runNodes(jobId, grantBlock, ranked, fixed, 0)
    const sent = out.filter((o) => o.plan.send).map((o) => o.x.v.wallet.address)
    const kept = out.filter((o) => !o.plan.send)
    expect(sent).toEqual(ranked.slice(0, 4).map((x) => x.v.wallet.address))
    expect(kept.map((o) => o.x.v.wallet.address)).toEqual(
      ranked.slice(4).map((x) => x.v.wallet.address),
    )
    for (const o of kept) expect(o.plan.wave).toBeGreaterThan(0)
    const [members] = await sortition.committeeOf(jobId)
    expect(members).toEqual(
      drawCommittee(
        ranked.map((x) => ({
          id: x.v.wallet.address,
          beta: x.t.beta,
          weight: x.stake * x.reputation,
        })),
      ).map((t) => t.id),
    )
  })

  it('with the default 4 passes ahead a node keeps its ticket only if it is beaten at the weight those passes would give', async () => {
    const { jobId, seed, grantBlock } = await openAt()
    const ranked = await scored(seed)
    const fixed = { watch() {}, reference: async () => (ranked[3]!.score + 1n) / 2n, size: 1 }
    const out = await runNodes(jobId, grantBlock, ranked, fixed)
    const cutoff = ranked[3]!.score
    for (const o of out) {
      const best = sortitionScore(
        o.x.t.beta,
        o.x.stake * BigInt(reputationAfter(4, Number(o.x.reputation))),
      )
      expect(o.plan.send).toBe(best < cutoff)
    }
    const [members] = await sortition.committeeOf(jobId)
    expect(members).toEqual(ranked.slice(0, 4).map((x) => x.v.wallet.address))
  })

  it('a reference 2²⁰ too low: every node waits for the last wave of this 8-block window, then all send, and the committee is unchanged', async () => {
    const { jobId, seed, grantBlock } = await openAt()
    const ranked = await scored(seed)
    const fixed = { watch() {}, reference: async () => ranked[0]!.score / 2n ** 20n, size: 1 }
    const out = await runNodes(jobId, grantBlock, ranked, fixed, 0)
    // the first to go sees free seats; those after it in the same wave too (one block)
    for (const o of out) expect(o.plan).toEqual({ send: true, wave: ticketWaves(WINDOW) - 1 })
    const [members] = await sortition.committeeOf(jobId)
    expect(members).toEqual(ranked.slice(0, 4).map((x) => x.v.wallet.address))
  })
})
