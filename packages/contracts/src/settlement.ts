/**
 * The attested-job settlement (issue #16, ADR 0027): CommitteeSortition + AttestationHub, and
 * the two timelocked admin calls that make the hub a NodeRegistry manager and an
 * AccessController settler.
 */
import {
  Contract,
  ContractFactory,
  type ContractRunner,
  getAddress,
  getCreateAddress,
  Interface,
  keccak256,
  type Signer,
} from 'ethers'
import { DeploymentError } from './errors.ts'
import {
  accessControllerAbi,
  attestationHubAbi,
  attestationHubBytecode,
  committeeSortitionAbi,
  committeeSortitionBytecode,
  nodeRegistryAbi,
} from './generated/artifacts.ts'
import type { AttestationHubContract, CommitteeSortitionContract } from './generated/bindings.ts'

/** Parameters of a settlement deployment. */
export interface SettlementParameters {
  /** Committee size n = 3f + 1, 4 … 31 (default 4). */
  seats?: number
  /** Blocks after the grant during which VRF tickets are accepted, 1 … 256 (default 20). */
  sortitionWindow?: number
  /** Blocks after the sortition window during which a certificate is accepted (default 100). */
  certificateBlocks?: number
  /** Share of a job's escrow for the certificate's signers, in basis points (default 1000). */
  verifierBps?: number
  /** Share of a job's escrow for the executor on a pass, in basis points (default 0). */
  executorBps?: number
  /** Wei slashed from the executor on a fail verdict (default 0.005 ETH). */
  failSlash?: bigint
  /** Wei slashed from an equivocating verifier (default 0.005 ETH). */
  equivocationSlash?: bigint
  /**
   * Share of an equivocation slash credited to whoever reports it, in basis points, below
   * 10,000 (default 1000); the rest, and every fail slash, is burned (ADR 0092).
   */
  reporterBps?: number
  /**
   * Blocks a report's commitment must age before its reveal pays the reporter, ≥ 1 (default 2,
   * ADR 0096): a bot that copies a reveal from the mempool cannot have committed earlier.
   */
  revealDelay?: number
}

export const DEFAULT_SETTLEMENT_PARAMETERS = {
  seats: 4,
  sortitionWindow: 20,
  certificateBlocks: 100,
  verifierBps: 1000,
  executorBps: 0,
  // 0.005 ether as a literal: a top-level parseEther call would keep ethers in every bundle.
  failSlash: 5_000_000_000_000_000n,
  equivocationSlash: 5_000_000_000_000_000n,
  reporterBps: 1000,
  revealDelay: 2,
} as const

/** Where the settlement contracts live. */
export interface SettlementAddresses {
  readonly committeeSortition: string
  readonly attestationHub: string
}

/** Typed settlement contracts. */
export interface SettlementContracts {
  readonly committeeSortition: CommitteeSortitionContract
  readonly attestationHub: AttestationHubContract
}

/**
 * Deploys a further CommitteeSortition (opener: the hub) and AttestationHub over an existing
 * deployment (`deployDigicap` deploys and wires the first). This hub can settle only once the
 * admin has named it NodeRegistry manager and AccessController settler: both are timelocked
 * admin calls ({@link settlementRoleCalls}, {@link queueAdminCalls}, {@link sendAdminCalls}).
 *
 * @throws {DeploymentError} when the signer has no provider.
 */
export async function deploySettlement(
  signer: Signer,
  deployment: { nodeRegistry: string; accessController: string },
  params: SettlementParameters = {},
): Promise<SettlementAddresses> {
  if (!signer.provider) throw new DeploymentError('The signer has no provider')
  const from = await signer.getAddress()
  const nonce = await signer.provider.getTransactionCount(from, 'pending')
  return deploySettlementAt(signer, deployment, params, nonce)
}

/** {@link deploySettlement} from the signer's `nonce` (the sortition) and `nonce + 1` (the hub). */
export async function deploySettlementAt(
  signer: Signer,
  deployment: { nodeRegistry: string; accessController: string },
  params: SettlementParameters,
  nonce: number,
): Promise<SettlementAddresses> {
  const p = { ...DEFAULT_SETTLEMENT_PARAMETERS, ...params }
  const from = await signer.getAddress()
  // The sortition names the hub as its opener: the hub is the next contract this signer creates.
  const hubAddress = getCreateAddress({ from, nonce: nonce + 1 })
  const sortition = await new ContractFactory(
    committeeSortitionAbi,
    committeeSortitionBytecode,
    signer as ContractRunner,
  ).deploy(deployment.nodeRegistry, hubAddress, p.sortitionWindow, p.seats, { nonce })
  const hub = await new ContractFactory(
    attestationHubAbi,
    attestationHubBytecode,
    signer as ContractRunner,
  ).deploy(
    await sortition.getAddress(),
    deployment.accessController,
    p.certificateBlocks,
    p.verifierBps,
    p.executorBps,
    p.failSlash,
    p.equivocationSlash,
    p.reporterBps,
    p.revealDelay,
    { nonce: nonce + 1 },
  )
  await Promise.all([sortition.waitForDeployment(), hub.waitForDeployment()])
  if (getAddress(await hub.getAddress()) !== getAddress(hubAddress))
    throw new DeploymentError('The hub was not deployed at the address the sortition names')
  return { committeeSortition: await sortition.getAddress(), attestationHub: hubAddress }
}

/** Typed ethers contracts for the settlement addresses. */
export function connectSettlement(
  addresses: SettlementAddresses,
  runner: ContractRunner,
): SettlementContracts {
  return {
    committeeSortition: new Contract(
      addresses.committeeSortition,
      committeeSortitionAbi,
      runner,
    ) as unknown as CommitteeSortitionContract,
    attestationHub: new Contract(
      addresses.attestationHub,
      attestationHubAbi,
      runner,
    ) as unknown as AttestationHubContract,
  }
}

/** A timelocked admin call: the contract, and its full calldata. */
export interface AdminCall {
  readonly target: string
  readonly data: string
}

/** The two admin calls that give `hub` its powers (manager of the registry, settler of the controller). */
export function settlementRoleCalls(
  deployment: { nodeRegistry: string; accessController: string },
  hub: string,
): AdminCall[] {
  return [
    {
      target: deployment.nodeRegistry,
      data: new Interface(nodeRegistryAbi).encodeFunctionData('setManager', [hub, true]),
    },
    {
      target: deployment.accessController,
      data: new Interface(accessControllerAbi).encodeFunctionData('setSettler', [hub, true]),
    },
  ]
}

const GUARDED_ABI = [
  'function queueAdminCall(bytes data) returns (uint256 readyAt)',
  'function adminCallReadyAt(bytes32 callHash) view returns (uint256)',
]

/**
 * Queues timelocked admin calls (the admin signs). Returns the time (seconds) from which
 * {@link sendAdminCalls} may send them all.
 */
export async function queueAdminCalls(admin: Signer, calls: AdminCall[]): Promise<bigint> {
  let readyAt = 0n
  for (const call of calls) {
    const guarded = new Contract(call.target, GUARDED_ABI, admin as ContractRunner)
    await (await guarded.getFunction('queueAdminCall')(call.data)).wait()
    // Read back: the block that mined it may be later than a simulation's.
    const at = (await guarded.getFunction('adminCallReadyAt')(keccak256(call.data))) as bigint
    if (at > readyAt) readyAt = at
  }
  return readyAt
}

/** Sends queued admin calls once their delay has passed (the admin signs). */
export async function sendAdminCalls(admin: Signer, calls: AdminCall[]): Promise<void> {
  for (const call of calls)
    await (await admin.sendTransaction({ to: call.target, data: call.data })).wait()
}
