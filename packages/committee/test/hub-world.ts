/**
 * One anvil per test file with the whole settlement deployed the way production does it:
 * deployDigicap (with the hub of the first committee size, named manager and settler at
 * construction), deploySettlement for each further size, those hubs named NodeRegistry manager
 * and AccessController settler through the admin timelock,
 * registered verifiers, an executor with an attestation record, and a capsule whose policy
 * requires attestation. Jobs are opened from real grants and seated from real VRF tickets.
 */
import {
  type AttestationHubContract,
  accessControllerAbi,
  attestationHubAbi,
  attested,
  type CommitteeSortitionContract,
  committeeSortitionAbi,
  connectDigicap,
  connectSettlement,
  type DigicapAddresses,
  type DigicapContracts,
  deployDigicap,
  deploySettlement,
  maxRuns,
  nodeRegistryAbi,
  queueAdminCalls,
  sendAdminCalls,
  settlementRoleCalls,
} from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { onchainProof } from '@digicap/vrf'
import {
  concat,
  getBytes,
  hexlify,
  Interface,
  keccak256,
  parseEther,
  randomBytes,
  type Signer,
  type TransactionReceipt,
  type Wallet,
} from 'ethers'
import { drawTicket, type EquivocationProof, equivocationReveal, jobSeed } from '../src/index.ts'

export const ROLE_EXECUTOR = 1
export const ROLE_VERIFIER = 2
export const STAKE = parseEther('0.01')
export const FEE = parseEther('0.01')
export const SORTITION_WINDOW = 40
export const CERTIFICATE_BLOCKS = 200
export const VERIFIER_BPS = 2000n
export const EXECUTOR_BPS = 1000n
export const FAIL_SLASH = parseEther('0.004')
export const EQUIVOCATION_SLASH = parseEther('0.003')
/** The reporter's share of an equivocation slash (ADR 0092); the rest is burned. */
export const REPORTER_BPS = 1000n
/** Blocks a report commitment ages before its reveal (ADR 0096). */
export const REVEAL_DELAY = 2n
/** NodeRegistry.BURN_ADDRESS: where the unpaid part of a slash goes (ADR 0092). */
export const BURN_ADDRESS = '0x000000000000000000000000000000000000dEaD'
export const COMMIT_TYPES = {
  Commit: [
    { name: 'jobId', type: 'bytes32' },
    { name: 'view', type: 'uint64' },
    { name: 'verdict', type: 'uint8' },
    { name: 'evidenceHash', type: 'bytes32' },
  ],
}
/** AttestationHub.Status. */
export const STATUS = { None: 0n, Open: 1n, Seated: 2n, Certified: 3n, Settled: 4n, TimedOut: 5n }

export interface HubValue {
  jobId: string
  viewNumber: bigint
  verdict: number
  evidenceHash: string
}

export interface HubSetup {
  hub: AttestationHubContract
  sortition: CommitteeSortitionContract
  hubAddress: string
}

export interface HubWorld {
  anvil: Anvil
  deployer: Wallet
  owner: Wallet
  executor: Wallet
  verifiers: Wallet[]
  addresses: DigicapAddresses
  c: DigicapContracts
  chainId: bigint
  hubs: Map<number, HubSetup>
  /** A capsule whose policy is `attested()`, and one whose policy is not. */
  attestedCapsule: string
  plainCapsule: string
  /** Every error the hub, its library and the three contracts it calls can revert with. */
  errors: Interface
}

/** Starts the world: `seats` lists the committee sizes to deploy a hub for. */
export async function startHubWorld(seats: number[], verifierCount: number): Promise<HubWorld> {
  const anvil = await startAnvil({
    accounts: verifierCount + 3,
    ...(process.env.TRACE_GAS ? { args: ['--steps-tracing'] } : {}),
  })
  const [deployer, owner, executor, ...verifiers] = anvil.signers as Wallet[]
  const parameters = (n: number) => ({
    seats: n,
    sortitionWindow: SORTITION_WINDOW,
    certificateBlocks: CERTIFICATE_BLOCKS,
    verifierBps: Number(VERIFIER_BPS),
    executorBps: Number(EXECUTOR_BPS),
    failSlash: FAIL_SLASH,
    equivocationSlash: EQUIVOCATION_SLASH,
    reporterBps: Number(REPORTER_BPS),
    revealDelay: Number(REVEAL_DELAY),
  })
  const [first, ...more] = seats
  const addresses = await deployDigicap(deployer!, {
    minStake: STAKE,
    settlement: parameters(first!),
  })
  const c = connectDigicap(addresses, deployer!)
  const hubs = new Map<number, HubSetup>()
  const seat = (n: number, s: { attestationHub: string; committeeSortition: string }) => {
    const { attestationHub, committeeSortition } = connectSettlement(s, deployer!)
    hubs.set(n, {
      hub: attestationHub,
      sortition: committeeSortition,
      hubAddress: s.attestationHub,
    })
  }
  seat(first!, addresses)
  const calls = []
  for (const n of more) {
    const s = await deploySettlement(deployer!, addresses, parameters(n))
    seat(n, s)
    calls.push(...settlementRoleCalls(addresses, s.attestationHub))
  }
  // A further hub's powers are timelocked admin calls: queue, let the delay pass (anvil), send.
  if (calls.length > 0) {
    const readyAt = await queueAdminCalls(deployer!, calls)
    await anvil.provider.send('evm_setNextBlockTimestamp', [Number(readyAt)])
    await sendAdminCalls(deployer!, calls)
  }
  const register = (w: Wallet, roles: number) =>
    (c.nodeRegistry.connect(w) as typeof c.nodeRegistry)
      .register(hexlify(randomBytes(38)), hexlify(randomBytes(32)), roles, { value: STAKE })
      .then((tx) => tx.wait())
  await register(executor!, ROLE_EXECUTOR)
  for (const v of verifiers) await register(v, ROLE_VERIFIER)
  const capsule = async (rule: ReturnType<typeof attested>) => {
    const policy = await deployPolicy(owner!, rule, { nodeRegistry: addresses.nodeRegistry })
    const id = hexlify(randomBytes(32))
    await (
      await c.capsuleRegistry
        .connect(owner!)
        .register(
          id,
          policy.address,
          'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
          hexlify(randomBytes(32)),
          hexlify(randomBytes(38)),
          hexlify(randomBytes(32)),
        )
    ).wait()
    return id
  }
  const attestedCapsule = await capsule(attested())
  const plainCapsule = await capsule(maxRuns(1000))
  const hubErrors = (attestationHubAbi as readonly { type: string }[]).filter(
    (x) => x.type === 'error',
  )
  const others = [...accessControllerAbi, ...nodeRegistryAbi, ...committeeSortitionAbi].filter(
    (x) => x.type === 'error' && !hubErrors.some((h) => (h as { name?: string }).name === x.name),
  )
  return {
    anvil,
    deployer: deployer!,
    owner: owner!,
    executor: executor!,
    verifiers,
    addresses,
    c,
    chainId: anvil.chainId,
    hubs,
    attestedCapsule,
    plainCapsule,
    errors: new Interface([...hubErrors, ...others] as never[]),
  }
}

export const mine = (w: HubWorld, blocks: number) =>
  w.anvil.provider.send('anvil_mine', [`0x${blocks.toString(16)}`])

/**
 * A paid report as a reporter makes it (ADR 0096): `commitReport` from `reporter`, `REVEAL_DELAY`
 * blocks, then the reveal (`revealBeforeEquivocation` for a before-round proof). Both receipts.
 */
export async function reportPaid(
  w: HubWorld,
  hub: AttestationHubContract,
  reporter: Wallet,
  jobId: string,
  committee: string[],
  proof: EquivocationProof,
): Promise<{ commit: TransactionReceipt; reveal: TransactionReceipt }> {
  const r = equivocationReveal(proof, reporter.address as `0x${string}`, randomBytes(32))
  const h = hub.connect(reporter) as typeof hub
  const commit = await sent(h.commitReport(r.commitment))
  await mine(w, Number(REVEAL_DELAY))
  const before = hexlify(proof.a.jobId) !== jobId.toLowerCase()
  const reveal = before ? h.revealBeforeEquivocation : h.revealEquivocation
  return { commit, reveal: await sent(reveal(jobId, committee, r.a, r.b, r.reporter, r.salt)) }
}

/**
 * The receipt of a sent transaction, polled directly (anvil mines on send). The stalls of ethers'
 * `wait()` seen here were a transaction mined between its asks with no block after it;
 * `createProvider`'s wait asks on a timer since (contracts `test/provider-wait.test.ts`).
 */
export async function sent(
  tx: Promise<{ hash: string; wait(): Promise<unknown> }>,
): Promise<TransactionReceipt> {
  const { hash } = await tx
  const provider = (
    (await tx) as unknown as {
      provider: { getTransactionReceipt(h: string): Promise<TransactionReceipt | null> }
    }
  ).provider
  for (let i = 0; i < 6000; i++) {
    const receipt = await provider.getTransactionReceipt(hash)
    if (receipt) {
      if (receipt.status !== 1) throw new Error(`transaction ${hash} reverted`)
      return receipt
    }
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`no receipt for ${hash} after 60 s`)
}

/** The decoded custom error of a reverting call, as `Name(arg,…)`. */
export async function revertOf(w: HubWorld, call: Promise<unknown>): Promise<string> {
  try {
    await call
  } catch (err) {
    const data = (err as { data?: string }).data
    const parsed = data ? w.errors.parseError(data) : null
    if (parsed) return `${parsed.name}(${parsed.args.join(',')})`
    throw err
  }
  throw new Error('call did not revert')
}

/** A chain-path grant on `capsule` paying `fee` into escrow; its id. */
export async function grant(w: HubWorld, capsule = w.attestedCapsule, fee = FEE): Promise<string> {
  const ac = w.c.accessController.connect(w.executor) as typeof w.c.accessController
  const args = [capsule, hexlify(randomBytes(32)), hexlify(randomBytes(32)), '0x'] as const
  const id = await ac.requestAccess.staticCall(...args, { value: fee })
  await sent(ac.requestAccess(...args, { value: fee }))
  return id
}

export const byAddress = (a: { address: string }, b: { address: string }) =>
  BigInt(a.address) < BigInt(b.address) ? -1 : 1

/**
 * Opens a job on a fresh grant (or `grantId`) on the `seats` hub; `members` submit tickets
 * (exactly they are seated); seats the committee unless `seat` is false.
 */
export async function openJob(
  w: HubWorld,
  seats: number,
  members: Wallet[],
  options: { seat?: boolean; grantId?: string } = {},
): Promise<{ jobId: string; committee: string[]; openGas: bigint; ticketGas: bigint[] }> {
  const { hub, sortition } = w.hubs.get(seats)!
  const jobId = options.grantId ?? (await grant(w))
  const receipt = await sent(hub.openJob(jobId))
  await mine(w, 1)
  const block = await w.anvil.provider.getBlock(receipt.blockNumber)
  const seed = jobSeed(getBytes(jobId), getBytes(block!.hash!))
  const ticketGas: bigint[] = []
  for (const m of members) {
    const t = drawTicket(getBytes(m.privateKey), seed)
    const args = onchainProof(t.publicKey, seed, t.proof)
    const r = await sent(
      (sortition.connect(m) as typeof sortition).submitTicket(
        jobId,
        args.publicKey as never,
        args.proof as never,
      ),
    )
    ticketGas.push(r.gasUsed)
  }
  let committee: string[] = []
  if (options.seat !== false) {
    await mine(w, SORTITION_WINDOW)
    committee = [...(await hub.seatCommittee.staticCall(jobId))]
    await sent(hub.seatCommittee(jobId))
  }
  return { jobId, committee, openGas: receipt.gasUsed, ticketGas }
}

export function domainOf(w: HubWorld, seats: number, contract?: string, chain = w.chainId) {
  return {
    name: 'DigicapPbft',
    version: '1',
    chainId: chain,
    verifyingContract: contract ?? w.hubs.get(seats)!.hubAddress,
  }
}

/** The EIP-712 message: the struct field is `view` (`viewNumber` in Solidity, a keyword there). */
export function typedMessage(v: HubValue) {
  return {
    jobId: v.jobId,
    view: v.viewNumber,
    verdict: BigInt(v.verdict),
    evidenceHash: v.evidenceHash,
  }
}

/** `signers`' Commit signatures concatenated in the order given (sort them for a valid one). */
export async function certify(
  signers: Wallet[],
  value: HubValue,
  domain: ReturnType<typeof domainOf>,
): Promise<string> {
  const sigs = await Promise.all(
    signers.map((s) => s.signTypedData(domain, COMMIT_TYPES, typedMessage(value))),
  )
  return concat(sigs)
}

export function certificateValue(jobId: string, verdict = 7): HubValue {
  return { jobId, viewNumber: 2n, verdict, evidenceHash: hexlify(randomBytes(32)) }
}

/** Fails unless each contract's ETH balance equals its `totalHeld` (funds conserved). */
export async function conserved(w: HubWorld): Promise<{ ac: bigint; nr: bigint }> {
  const [acBal, nrBal, acHeld, nrHeld] = await Promise.all([
    w.anvil.provider.getBalance(w.addresses.accessController),
    w.anvil.provider.getBalance(w.addresses.nodeRegistry),
    w.c.accessController.totalHeld(),
    w.c.nodeRegistry.totalHeld(),
  ])
  if (acBal !== acHeld) throw new Error(`AccessController balance ${acBal} != totalHeld ${acHeld}`)
  if (nrBal !== nrHeld) throw new Error(`NodeRegistry balance ${nrBal} != totalHeld ${nrHeld}`)
  return { ac: acBal, nr: nrBal }
}

/** A certificate as `submitCertificate` takes it: `signers` sign, the rest of `committee` are `others`. */
export async function certificate(
  committee: string[],
  signers: Wallet[],
  value: HubValue,
  domain: ReturnType<typeof domainOf>,
): Promise<{ bits: bigint; others: string[]; signatures: string }> {
  let bits = 0n
  const others: string[] = []
  const ordered: Wallet[] = []
  committee.forEach((member, i) => {
    const signer = signers.find((s) => s.address === member)
    if (signer) {
      bits |= 1n << BigInt(i)
      ordered.push(signer)
    } else others.push(member)
  })
  return { bits, others, signatures: await certify(ordered, value, domain) }
}

/** A capsule owned by `owner` whose policy is `attested()` (the hub settles its grants). */
export async function attestedCapsuleOf(w: HubWorld, owner: Signer): Promise<string> {
  const policy = await deployPolicy(owner, attested(), { nodeRegistry: w.addresses.nodeRegistry })
  const id = hexlify(randomBytes(32))
  const registry = w.c.capsuleRegistry.connect(owner) as typeof w.c.capsuleRegistry
  await sent(
    registry.register(
      id,
      policy.address,
      'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
      hexlify(randomBytes(32)),
      hexlify(randomBytes(38)),
      hexlify(randomBytes(32)),
    ),
  )
  return id
}

const ACCESS_REQUEST_TYPES = {
  AccessRequest: [
    { name: 'capsuleId', type: 'bytes32' },
    { name: 'executor', type: 'address' },
    { name: 'ephemeralKey', type: 'bytes32' },
    { name: 'measurement', type: 'bytes32' },
    { name: 'jobParamsHash', type: 'bytes32' },
    { name: 'fee', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'expiry', type: 'uint64' },
  ],
}

/**
 * A fast-path audit recorded by `keeper` (the capsule's owner) of `executor`'s signed request
 * for `fee` (from its deposit, then its stake: `drawForAudit`); the grant id.
 */
export async function fastPathAudit(
  w: HubWorld,
  keeper: Signer,
  executor: Signer & { address: string },
  capsuleId: string,
  fee: bigint,
  nonce: bigint,
): Promise<string> {
  const latest = await w.anvil.provider.getBlock('latest')
  const req = {
    capsuleId,
    executor: executor.address,
    ephemeralKey: hexlify(randomBytes(32)),
    measurement: hexlify(randomBytes(32)),
    jobParamsHash: keccak256('0x'),
    fee,
    nonce,
    expiry: BigInt(latest!.timestamp) + 300n,
  }
  const domain = {
    name: 'DigicapAccessController',
    version: '1',
    chainId: w.chainId,
    verifyingContract: w.addresses.accessController,
  }
  const signature = await executor.signTypedData(domain, ACCESS_REQUEST_TYPES, req)
  const ac = w.c.accessController.connect(keeper) as typeof w.c.accessController
  const id = await ac.recordFastPathGrant.staticCall(req, '0x', signature)
  await sent(ac.recordFastPathGrant(req, '0x', signature))
  return id
}
