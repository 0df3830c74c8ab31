import { hashTypedData, privateKeySigner, toHex } from '@digicap/capsule-core'
import { connectDigicap, deployDigicap } from '@digicap/contracts'
import { compileSolidity } from '@digicap/contracts/compiler'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import {
  type BaseContract,
  ContractFactory,
  concat,
  getBytes,
  getCreateAddress,
  hexlify,
  Interface,
  parseEther,
  randomBytes,
  Signature,
  type Wallet,
} from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildCertificate,
  drawTicket,
  jobSeed,
  onchainProof,
  pbftCommittee,
  pbftDomain,
  signVote,
  verifyCertificate,
} from '../src/index.ts'
import { committeeSources } from './contracts.ts'

/**
 * AttestationHub + CommitteeCertificate on a real anvil: the committee is the one
 * CommitteeSortition seats from real VRF tickets of NodeRegistry verifiers; certificates are
 * EIP-712 `Commit` signatures made by ethers (an implementation independent of the contract).
 */
const ROLE_VERIFIER = 2
const WINDOW = 40
const CERTIFICATE_BLOCKS = 200
const COMMIT_TYPES = {
  Commit: [
    { name: 'jobId', type: 'bytes32' },
    { name: 'view', type: 'uint64' },
    { name: 'verdict', type: 'uint8' },
    { name: 'evidenceHash', type: 'bytes32' },
  ],
}
const STATUS = { Open: 1n, Seated: 2n, Settled: 3n, TimedOut: 4n }

interface Value {
  jobId: string
  viewNumber: bigint
  verdict: number
  evidenceHash: string
}
interface Receipt {
  gasUsed: bigint
  logs: { topics: string[]; data: string }[]
  blockNumber: number
}
type Tx = Promise<{ wait(): Promise<Receipt> }>
type Hub = BaseContract & {
  openJob(jobId: string): Tx
  seatCommittee: ((jobId: string) => Tx) & { staticCall(jobId: string): Promise<string[]> }
  submitCertificate: ((v: Value, committee: string[], signers: string[], sigs: string) => Tx) & {
    staticCall(v: Value, committee: string[], signers: string[], sigs: string): Promise<unknown>
  }
  closeTimedOut: ((jobId: string) => Tx) & { staticCall(jobId: string): Promise<unknown> }
  jobs(jobId: string): Promise<[string, bigint, bigint, bigint]>
  quorum(): Promise<bigint>
  domainSeparator(): Promise<string>
  certificateDigest(v: Value): Promise<string>
  getAddress(): Promise<string>
}
type Sortition = BaseContract & {
  submitTicket(jobId: string, pk: unknown, proof: unknown): Tx
}

let anvil: Anvil
let deployer: Wallet
let verifiers: Wallet[]
let errors: Interface
let chainId: bigint
const setups = new Map<number, { hub: Hub; sortition: Sortition; hubAddress: string }>()

beforeAll(async () => {
  anvil = await startAnvil({ accounts: 34 })
  const [first, ...rest] = anvil.signers as Wallet[]
  deployer = first!
  verifiers = rest
  chainId = (await anvil.provider.getNetwork()).chainId
  const addresses = await deployDigicap(deployer!, { minStake: parseEther('0.01') })
  const { nodeRegistry } = connectDigicap(addresses, deployer!)
  for (const v of verifiers)
    await (
      await (nodeRegistry.connect(v) as typeof nodeRegistry).register(
        hexlify(randomBytes(38)),
        hexlify(randomBytes(32)),
        ROLE_VERIFIER,
        { value: parseEther('0.01') },
      )
    ).wait()
  const out = compileSolidity(committeeSources())
  const s = out['@digicap/contracts/committee/CommitteeSortition.sol']!.CommitteeSortition!
  const h = out['@digicap/contracts/committee/AttestationHub.sol']!.AttestationHub!
  const lib = out['@digicap/contracts/committee/CommitteeCertificate.sol']!.CommitteeCertificate!
  errors = new Interface([
    ...(h.abi as never[]),
    ...(lib.abi as never[]).filter((x: { type: string }) => x.type === 'error'),
  ])
  // n = 31 (21 signatures) is left out: seating it with real VRF tickets took over 240 s on
  // the 2-core CI box; its gas row in the contracts README is from a one-off run.
  for (const seats of [4, 7]) {
    const nonce = await anvil.provider.getTransactionCount(deployer!.address)
    const hubAddress = getCreateAddress({ from: deployer!.address, nonce: nonce + 1 })
    const sortition = await new ContractFactory(s.abi as never, s.bytecode, deployer!).deploy(
      addresses.nodeRegistry,
      hubAddress,
      WINDOW,
      seats,
    )
    await sortition.waitForDeployment()
    const hub = await new ContractFactory(h.abi as never, h.bytecode, deployer!).deploy(
      await sortition.getAddress(),
      deployer!.address,
      CERTIFICATE_BLOCKS,
    )
    await hub.waitForDeployment()
    expect(await hub.getAddress()).toBe(hubAddress)
    setups.set(seats, {
      hub: hub as unknown as Hub,
      sortition: sortition as unknown as Sortition,
      hubAddress,
    })
  }
}, 180_000)
afterAll(() => anvil?.stop())

const mine = (blocks: number) => anvil.provider.send('anvil_mine', [`0x${blocks.toString(16)}`])

async function revertOf(call: Promise<unknown>): Promise<string> {
  try {
    await call
  } catch (err) {
    const data = (err as { data?: string }).data
    const parsed = data ? errors.parseError(data) : null
    if (parsed) return `${parsed.name}(${parsed.args.join(',')})`
    throw err
  }
  throw new Error('call did not revert')
}

/** Opens a job on the `seats` hub; `members` submit tickets (exactly they are seated). */
async function openJob(seats: number, members: Wallet[], seat = true) {
  const { hub, sortition } = setups.get(seats)!
  const jobId = hexlify(randomBytes(32))
  const receipt = await (await hub.openJob(jobId)).wait()
  await mine(1)
  const block = await anvil.provider.getBlock(receipt.blockNumber)
  const seed = jobSeed(getBytes(jobId), getBytes(block!.hash!))
  for (const m of members) {
    const t = drawTicket(getBytes(m.privateKey), seed)
    const args = onchainProof(t.publicKey, seed, t.proof)
    await (
      await (sortition.connect(m) as Sortition).submitTicket(jobId, args.publicKey, args.proof)
    ).wait()
  }
  let committee: string[] = []
  if (seat) {
    await mine(WINDOW)
    committee = [...(await hub.seatCommittee.staticCall(jobId))]
    await (await hub.seatCommittee(jobId)).wait()
  }
  return { jobId, committee }
}

const byAddress = (a: Wallet, b: Wallet) => (BigInt(a.address) < BigInt(b.address) ? -1 : 1)

function domainOf(seats: number, contract?: string, chain = chainId) {
  return {
    name: 'DigicapPbft',
    version: '1',
    chainId: chain,
    verifyingContract: (contract ?? setups.get(seats)!.hubAddress) as `0x${string}`,
  }
}

/** Signers sorted ascending and their concatenated 65-byte Commit signatures. */
async function certify(signers: Wallet[], value: Value, domain: ReturnType<typeof domainOf>) {
  const sigs = await Promise.all(
    signers.map((w) => w.signTypedData(domain, COMMIT_TYPES, typedMessage(value))),
  )
  return { signers: signers.map((w) => w.address), signatures: concat(sigs) }
}

/** The EIP-712 message: the struct field is `view` (`viewNumber` in Solidity, a keyword there). */
function typedMessage(v: Value) {
  return {
    jobId: v.jobId,
    view: v.viewNumber,
    verdict: BigInt(v.verdict),
    evidenceHash: v.evidenceHash,
  }
}

function certificateValue(jobId: string, verdict = 1): Value {
  return { jobId, viewNumber: 2n, verdict, evidenceHash: hexlify(randomBytes(32)) }
}

describe('AttestationHub: the committee certificate checked on chain', () => {
  it('signs what @digicap/capsule-core hashes: domain {DigicapPbft, 1, chain, hub}, Commit struct', async () => {
    const { hub } = setups.get(4)!
    const value = certificateValue(hexlify(randomBytes(32)), 5)
    const digest = hashTypedData({
      domain: domainOf(4),
      types: COMMIT_TYPES,
      primaryType: 'Commit',
      message: typedMessage(value),
    })
    expect(await hub.certificateDigest(value)).toBe(toHex(digest))
  })

  it("accepts the PBFT code's own certificate (signVote, buildCertificate, verifyCertificate) as is", async () => {
    const members = verifiers.slice(23, 27)
    const { hub, hubAddress } = setups.get(4)!
    const { jobId, committee } = await openJob(4, members)
    const domain = pbftDomain(chainId, hubAddress)
    const value = { jobId: getBytes(jobId), view: 1n, verdict: 7, evidenceHash: randomBytes(32) }
    const commits = await Promise.all(
      members.map(async (m) => {
        const key = privateKeySigner(getBytes(m.privateKey))
        const vote = await signVote(key, domain, { phase: 'commit', preparedView: 0n, ...value })
        return { signer: key.address, vote }
      }),
    )
    const paper = pbftCommittee(
      members.map((m, i) => ({ address: m.address as `0x${string}`, peerId: `peer-${i}` })),
    )
    const cert = buildCertificate(domain, paper, commits)
    verifyCertificate(cert, paper, { domain, jobId: value.jobId })
    await (
      await hub.submitCertificate(
        {
          jobId,
          viewNumber: cert.view,
          verdict: cert.verdict,
          evidenceHash: hexlify(cert.evidenceHash),
        },
        committee,
        cert.signers,
        concat(cert.signatures),
      )
    ).wait()
    expect((await hub.jobs(jobId)).slice(2)).toEqual([STATUS.Settled, 7n])
  }, 120_000)

  it('accepts 2f + 1 member signatures once: records the verdict, emits it, refuses a second certificate', async () => {
    const members = verifiers.slice(0, 4)
    const { hub } = setups.get(4)!
    const { jobId, committee } = await openJob(4, members)
    expect(committee).toEqual(members.toSorted(byAddress).map((w) => w.address))
    const value = certificateValue(jobId, 3)
    const cert = await certify(members.toSorted(byAddress).slice(1), value, domainOf(4))
    const receipt = await (
      await hub.submitCertificate(value, committee, cert.signers, cert.signatures)
    ).wait()
    const log = receipt.logs
      .map((l) => errors.parseLog(l))
      .find((l) => l?.name === 'CertificateAccepted')
    expect(log?.args.toArray().map(String)).toEqual([jobId, '3', '2', value.evidenceHash])
    const job = await hub.jobs(jobId)
    expect([job[2], job[3]]).toEqual([STATUS.Settled, 3n])
    const again = await certify(members.toSorted(byAddress).slice(0, 3), value, domainOf(4))
    expect(
      await revertOf(
        hub.submitCertificate.staticCall(value, committee, again.signers, again.signatures),
      ),
    ).toBe(`JobClosed(${jobId},${STATUS.Settled})`)
  }, 120_000)

  it('refuses forged, short, duplicated, unsorted, non-member, foreign-domain and bad-verdict certificates', async () => {
    const members = verifiers.slice(4, 8).toSorted(byAddress)
    const outsider = verifiers[8]!
    const { hub } = setups.get(4)!
    const { jobId, committee } = await openJob(4, members)
    const value = certificateValue(jobId)
    const submit = (c: { signers: string[]; signatures: string }, v = value, list = committee) =>
      revertOf(hub.submitCertificate.staticCall(v, list, c.signers, c.signatures))
    const good = await certify(members.slice(0, 3), value, domainOf(4))

    // Forged: the outsider's signature presented as member 1's; and one flipped bit in r.
    const forged = await certify([members[0]!, outsider, members[2]!], value, domainOf(4))
    expect(await submit({ signers: good.signers, signatures: forged.signatures })).toBe(
      `BadSignature(1,${members[1]!.address})`,
    )
    const flipped = getBytes(good.signatures)
    flipped[65 * 2 + 5]! ^= 1
    expect(await submit({ signers: good.signers, signatures: hexlify(flipped) })).toMatch(
      /^BadSignature\(2,/,
    )
    // The high-s twin of a valid signature (malleable) is refused too.
    const sig0 = Signature.from(good.signatures.slice(0, 132))
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
    const twin = concat([
      sig0.r,
      `0x${(n - BigInt(sig0.s)).toString(16).padStart(64, '0')}`,
      sig0.v === 27 ? '0x1c' : '0x1b',
    ])
    expect(
      await submit({
        signers: good.signers,
        signatures: concat([twin, `0x${good.signatures.slice(132)}`]),
      }),
    ).toBe(`BadSignature(0,${members[0]!.address})`)

    // Fewer than 2f + 1 = 3.
    const short = await certify(members.slice(0, 2), value, domainOf(4))
    expect(await submit(short)).toBe('TooFewSignatures(2,3)')
    // Duplicated signer (same signature twice) and unsorted signers.
    const dup = await certify([members[0]!, members[1]!, members[1]!], value, domainOf(4))
    expect(await submit(dup)).toBe('SignersNotAscending(2)')
    const unsorted = await certify([members[1]!, members[0]!, members[2]!], value, domainOf(4))
    expect(await submit(unsorted)).toBe('SignersNotAscending(1)')
    // A registered verifier that is not on this committee.
    const withOutsider = await certify(
      [...members.slice(0, 2), outsider].toSorted(byAddress),
      value,
      domainOf(4),
    )
    expect(await submit(withOutsider)).toBe(`NotCommitteeMember(${outsider.address})`)
    // Signatures and signers that do not pair up.
    expect(await submit({ signers: good.signers, signatures: good.signatures.slice(0, -2) })).toBe(
      `SignaturesLength(3,${65 * 3 - 1})`,
    )
    // Signed for another contract (the 7-seat hub) or another chain: the digest differs.
    const otherHub = await certify(
      members.slice(0, 3),
      value,
      domainOf(4, setups.get(7)!.hubAddress),
    )
    expect(await submit(otherHub)).toBe(`BadSignature(0,${members[0]!.address})`)
    const otherChain = await certify(
      members.slice(0, 3),
      value,
      domainOf(4, undefined, chainId + 1n),
    )
    expect(await submit(otherChain)).toBe(`BadSignature(0,${members[0]!.address})`)
    // A committee list that is not the seated one.
    const swapped = [...committee.slice(0, 3), outsider.address].sort((a, b) =>
      BigInt(a) < BigInt(b) ? -1 : 1,
    )
    expect(await submit(good, value, swapped)).toBe(`CommitteeMismatch(${jobId})`)
    // Verdicts are 0 … 7.
    const eight = { ...value, verdict: 8 }
    expect(await submit(await certify(members.slice(0, 3), eight, domainOf(4)), eight)).toBe(
      'InvalidVerdict(8)',
    )
    // The good one still passes after all these.
    await (await hub.submitCertificate(value, committee, good.signers, good.signatures)).wait()
    expect((await hub.jobs(jobId))[2]).toBe(STATUS.Settled)
  }, 120_000)

  it("refuses another job's certificate, whether its committee differs or is the same", async () => {
    const { hub } = setups.get(4)!
    const a = await openJob(4, verifiers.slice(8, 12))
    const b = await openJob(4, verifiers.slice(12, 16))
    const c = await openJob(4, verifiers.slice(8, 12))
    const bValue = certificateValue(b.jobId)
    const bCert = await certify(verifiers.slice(12, 15).toSorted(byAddress), bValue, domainOf(4))
    const cValue = certificateValue(c.jobId)
    const cCert = await certify(verifiers.slice(8, 11).toSorted(byAddress), cValue, domainOf(4))
    // B's whole certificate relabelled as A's: B's committee is not A's.
    expect(
      await revertOf(
        hub.submitCertificate.staticCall(
          { ...bValue, jobId: a.jobId },
          b.committee,
          bCert.signers,
          bCert.signatures,
        ),
      ),
    ).toBe(`CommitteeMismatch(${a.jobId})`)
    // C has A's committee: C's signatures relabelled as A's do not sign A's job id.
    expect(c.committee).toEqual(a.committee)
    expect(
      await revertOf(
        hub.submitCertificate.staticCall(
          { ...cValue, jobId: a.jobId },
          a.committee,
          cCert.signers,
          cCert.signatures,
        ),
      ),
    ).toBe(`BadSignature(0,${cCert.signers[0]})`)
    // B's certificate is fine for B.
    await (await hub.submitCertificate(bValue, b.committee, bCert.signers, bCert.signatures)).wait()
  }, 120_000)

  it('closes a job without certificate as timed out after the deadline, not before; then refuses certificates', async () => {
    const { hub } = setups.get(4)!
    // Only three tickets for four seats: the committee never fills.
    const { jobId } = await openJob(4, verifiers.slice(16, 19), false)
    expect(await revertOf(hub.seatCommittee.staticCall(jobId))).toBe(`SortitionOpen(${jobId})`)
    await mine(WINDOW)
    expect(await revertOf(hub.seatCommittee.staticCall(jobId))).toBe(
      `CommitteeIncomplete(${jobId},3,4)`,
    )
    const deadline = (await hub.jobs(jobId))[1]
    expect(await revertOf(hub.closeTimedOut.staticCall(jobId))).toBe(
      `DeadlineNotReached(${jobId},${deadline})`,
    )
    const value = certificateValue(jobId)
    expect(await revertOf(hub.submitCertificate.staticCall(value, [], [], '0x'))).toBe(
      `CommitteeNotSeated(${jobId})`,
    )
    await mine(Number(deadline) - (await anvil.provider.getBlockNumber()))
    const receipt = await (await hub.closeTimedOut(jobId)).wait()
    expect(receipt.logs.map((l) => errors.parseLog(l)?.name)).toEqual(['JobTimedOut'])
    expect((await hub.jobs(jobId))[2]).toBe(STATUS.TimedOut)
    expect(await revertOf(hub.closeTimedOut.staticCall(jobId))).toBe(
      `JobClosed(${jobId},${STATUS.TimedOut})`,
    )
    expect(await revertOf(hub.submitCertificate.staticCall(value, [], [], '0x'))).toBe(
      `JobClosed(${jobId},${STATUS.TimedOut})`,
    )
    expect(await revertOf(hub.seatCommittee.staticCall(jobId))).toBe(
      `JobClosed(${jobId},${STATUS.TimedOut})`,
    )
  }, 120_000)

  it('refuses a late certificate on a seated job and lets it time out', async () => {
    const members = verifiers.slice(19, 23)
    const { hub } = setups.get(4)!
    const { jobId, committee } = await openJob(4, members)
    const value = certificateValue(jobId)
    const cert = await certify(members.toSorted(byAddress).slice(0, 3), value, domainOf(4))
    const deadline = (await hub.jobs(jobId))[1]
    await mine(Number(deadline) - (await anvil.provider.getBlockNumber()) + 1)
    expect(
      await revertOf(
        hub.submitCertificate.staticCall(value, committee, cert.signers, cert.signatures),
      ),
    ).toBe(`DeadlinePassed(${jobId},${deadline})`)
    await (await hub.closeTimedOut(jobId)).wait()
    expect((await hub.jobs(jobId))[2]).toBe(STATUS.TimedOut)
  }, 120_000)

  it('only the opener opens a job, once', async () => {
    const { hub } = setups.get(4)!
    const jobId = hexlify(randomBytes(32))
    expect(await revertOf((hub.connect(verifiers[0]!) as Hub).openJob(jobId))).toBe(
      `NotOpener(${verifiers[0]!.address})`,
    )
    await (await hub.openJob(jobId)).wait()
    expect(await revertOf(hub.openJob(jobId))).toBe(`JobExists(${jobId})`)
  })

  it('gas of submitCertificate in real transactions: 3 and 5 signatures (5 signatures ≤ 66.5k)', async () => {
    const rows: string[] = []
    for (const seats of [4, 7]) {
      const members = verifiers.slice(0, seats)
      const { hub } = setups.get(seats)!
      const { jobId, committee } = await openJob(seats, members)
      const quorum = Number(await hub.quorum())
      expect(quorum).toBe((2 * (seats - 1)) / 3 + 1)
      const value = certificateValue(jobId)
      const cert = await certify(
        members.toSorted(byAddress).slice(0, quorum),
        value,
        domainOf(seats),
      )
      const tx = await hub.submitCertificate(value, committee, cert.signers, cert.signatures)
      const { gasUsed } = await tx.wait()
      const data = getBytes((tx as unknown as { data: string }).data)
      const calldata = data.reduce((sum, b) => sum + (b === 0 ? 4 : 16), 0)
      rows.push(`n=${seats} signatures=${quorum} gas=${gasUsed} (calldata ${calldata})`)
      // Regression bound, not the goal: 5 signatures measure ~65.4k (the goal of 60k is not met yet,
      // README); gas is deterministic, so a change in the check's cost shows here.
      if (quorum === 5) expect(gasUsed).toBeLessThanOrEqual(66_500n)
    }
    console.log(`submitCertificate gas: ${rows.join('; ')}`)
  }, 240_000)
})
