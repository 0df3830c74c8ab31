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
} from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { drawCommittee, drawTicket, jobSeed, selectionWeight } from '../src/index.ts'
import { committeeSources } from './contracts.ts'

const ROLE_VERIFIER = 2
const WINDOW = 8

type Pair = readonly [bigint, bigint]
type Method<A extends unknown[], R> = ((...args: A) => Promise<R>) & {
  staticCall(...args: A): Promise<unknown>
}
type Sortition = BaseContract & {
  openJob: Method<[string], { wait(): Promise<{ blockNumber: number }> }>
  submitTicket: Method<
    [string, Pair, unknown],
    { wait(): Promise<{ gasUsed: bigint; logs: unknown[] }> }
  >
  committeeOf(jobId: string): Promise<[string[], boolean]>
  seedOf(jobId: string): Promise<string>
}

let anvil: Anvil
let sortition: Sortition
let iface: Interface
let verifiers: { wallet: Wallet; stake: bigint }[]
let factory: ContractFactory
let registryAddress: string

beforeAll(async () => {
  anvil = await startAnvil()
  const [deployer, ...rest] = anvil.signers as Wallet[]
  const addresses = await deployDigicap(deployer!, { minStake: parseEther('0.01') })
  const { nodeRegistry } = connectDigicap(addresses, deployer!)
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
  const receipt = await (await sortition.openJob(jobId)).wait()
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
    expect(await revertOf(as(a!.wallet).openJob.staticCall(jobId))).toBe('NotOpener')
  })
})
