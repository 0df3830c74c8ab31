import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  Contract,
  ContractFactory,
  type ContractRunner,
  getAddress,
  getCreateAddress,
  type InterfaceAbi,
  type Provider,
  type Signer,
} from 'ethers'
import { DeploymentError } from './errors.ts'
import {
  accessControllerAbi,
  accessControllerBytecode,
  capsuleRegistryAbi,
  committeeSortitionAbi,
  iAccessPolicyAbi,
  nodeRegistryAbi,
  nodeRegistryBytecode,
} from './generated/artifacts.ts'
import type {
  AccessControllerContract,
  CapsuleRegistryContract,
  IAccessPolicyContract,
  NodeRegistryContract,
} from './generated/bindings.ts'
import { deploySettlementAt, type SettlementParameters } from './settlement.ts'

/** Where the Digicap contracts live on one chain. */
export interface DigicapAddresses {
  readonly chainId: string
  readonly capsuleRegistry: string
  readonly nodeRegistry: string
  readonly accessController: string
  /** CommitteeSortition: VRF tickets and the committee of each attested job (opener: the hub). */
  readonly committeeSortition: string
  /**
   * AttestationHub: settles attested jobs on the committee's certificate. Named NodeRegistry
   * manager and AccessController settler in their constructors (ADR 0033).
   */
  readonly attestationHub: string
  /** Block of the first deployment transaction (start point for event scans). */
  readonly deployBlock: number
}

/** Parameters fixed at deployment. */
export interface DigicapParameters {
  /** Receives the admin role of NodeRegistry and AccessController (default: the deployer). */
  admin?: string
  /** Minimum node stake in wei (default 0.01 ETH). */
  minStake?: bigint
  /** Unbonding delay in seconds (default 7 days). */
  unbondingDelay?: number
  /** Seconds a grant stays valid (default 600). */
  grantWindow?: number
  /** Seconds before a fee can be claimed (default 1 day). */
  disputeWindow?: number
  /**
   * Seconds within which a keyguard lands the audit of a fast-path release (default 600). Must be
   * below `withdrawalDelay` and `unbondingDelay`; a keyguard's `maxExpirySeconds` must not exceed it.
   */
  auditWindow?: number
  /** Seconds between a deposit's `requestWithdrawal` and `withdrawDeposit` (default 1 hour). */
  withdrawalDelay?: number
  /**
   * Seconds between queueing an admin call (naming a manager or settler, a new admin) and
   * sending it (default 8 days). Must exceed `unbondingDelay`, `disputeWindow` and
   * `withdrawalDelay`, so that anyone can leave before a queued change takes effect (ADR 0027).
   */
  adminDelay?: number
  /** The attested-job settlement (CommitteeSortition + AttestationHub); defaults in `DEFAULT_SETTLEMENT_PARAMETERS`. */
  settlement?: SettlementParameters
}

export interface DeployDigicapOptions extends DigicapParameters {
  /**
   * Folder of addresses files, one `<chainId>.json` per chain. When the file exists and every
   * address holds code, nothing is deployed and its addresses are returned (idempotent).
   */
  deploymentsDir?: string
  /** Redeploy when the addresses file points at addresses without code (a restarted dev chain). */
  replaceStale?: boolean
}

export const DEFAULT_PARAMETERS = {
  minStake: 10_000_000_000_000_000n, // 0.01 ether (a literal: see settlement.ts)
  unbondingDelay: 7 * 24 * 3600,
  grantWindow: 600,
  disputeWindow: 24 * 3600,
  auditWindow: 600,
  withdrawalDelay: 3600,
  adminDelay: 8 * 24 * 3600,
} as const

function providerOf(signer: Signer): Provider {
  if (!signer.provider) throw new DeploymentError('The signer has no provider')
  return signer.provider
}

/** Path of the addresses file of `chainId` in `dir`. */
export function deploymentFile(dir: string, chainId: bigint | number | string): string {
  return join(dir, `${BigInt(chainId)}.json`)
}

/**
 * Reads an addresses file written by `deployDigicap`.
 *
 * @throws {DeploymentError} when it is missing or malformed.
 */
export function readDeployment(dir: string, chainId: bigint | number | string): DigicapAddresses {
  const file = deploymentFile(dir, chainId)
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'))
  } catch (cause) {
    throw new DeploymentError('Cannot read the addresses file', { details: { file }, cause })
  }
  const r = raw as Record<string, unknown>
  try {
    if (r.chainId !== String(BigInt(chainId))) throw new Error('chain id')
    if (typeof r.deployBlock !== 'number' || !Number.isSafeInteger(r.deployBlock))
      throw new Error('deployBlock')
    if (r.attestationHub === undefined && r.committeeSortition === undefined)
      throw new DeploymentError('The addresses file predates the settlement contracts', {
        details: { file, reason: 'no-settlement' },
        hint: 'Redeploy: pass replaceStale to deployDigicap (pi-node init --deploy does).',
      })
    return {
      chainId: r.chainId,
      capsuleRegistry: getAddress(r.capsuleRegistry as string),
      nodeRegistry: getAddress(r.nodeRegistry as string),
      accessController: getAddress(r.accessController as string),
      committeeSortition: getAddress(r.committeeSortition as string),
      attestationHub: getAddress(r.attestationHub as string),
      deployBlock: r.deployBlock,
    }
  } catch (cause) {
    if (cause instanceof DeploymentError) throw cause
    throw new DeploymentError('The addresses file is malformed', { details: { file }, cause })
  }
}

async function hasCode(provider: Provider, a: DigicapAddresses): Promise<boolean> {
  const codes = await Promise.all(
    [
      a.capsuleRegistry,
      a.nodeRegistry,
      a.accessController,
      a.committeeSortition,
      a.attestationHub,
    ].map((x) => provider.getCode(x)),
  )
  return codes.every((c) => c !== '0x')
}

/** `CommitteeSortition.MIN_WEIGHT` of this package's contracts (ADR 0024, amended 2026-12-06). */
const SORTITION_MIN_WEIGHT = 1n << 41n

/**
 * Whether the recorded CommitteeSortition scores as this package's does. One deployed before
 * ADR 0024's amendment scores × 2⁶⁴ and has no `MIN_WEIGHT`: verifiers of this version would
 * misread its cut-offs, so the deployment is stale.
 */
async function sortitionCurrent(provider: Provider, a: DigicapAddresses): Promise<boolean> {
  const sortition = new Contract(a.committeeSortition, committeeSortitionAbi, provider)
  try {
    return BigInt(await sortition.getFunction('MIN_WEIGHT')()) === SORTITION_MIN_WEIGHT
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (code === 'CALL_EXCEPTION' || code === 'BAD_DATA') return false
    throw err
  }
}

/** Whether a `readDeployment` failure means "deploy afresh" rather than "stop". */
function replaceable(err: unknown): 'missing' | 'stale' | undefined {
  if ((err as { cause?: { code?: string } }).cause?.code === 'ENOENT') return 'missing'
  if ((err as { details?: { reason?: string } }).details?.reason === 'no-settlement') return 'stale'
  return undefined
}

/**
 * Deploys NodeRegistry and AccessController (which deploys CapsuleRegistry), CommitteeSortition
 * and AttestationHub, or returns the deployment the addresses file already records for this
 * chain. The hub is named NodeRegistry manager and AccessController settler in their
 * constructors (its address follows from the deployer's nonce), so it settles from its first
 * block without the admin timelock; any later manager or settler waits `adminDelay` (ADR 0033).
 *
 * @throws {DeploymentError} when the addresses file is malformed, or points at empty addresses
 *   and `replaceStale` is not set.
 *
 * @example
 * ```ts
 * const addresses = await deployDigicap(signer, { deploymentsDir: './deployments' })
 * const { accessController } = connectDigicap(addresses, signer)
 * ```
 */
export async function deployDigicap(
  signer: Signer,
  options: DeployDigicapOptions = {},
): Promise<DigicapAddresses> {
  const provider = providerOf(signer)
  const chainId = (await provider.getNetwork()).chainId
  const dir = options.deploymentsDir
  if (dir !== undefined) {
    let existing: DigicapAddresses | undefined
    let stale = false
    try {
      existing = readDeployment(dir, chainId)
    } catch (err) {
      const why = replaceable(err)
      if (why === undefined || (why === 'stale' && !options.replaceStale)) throw err
    }
    if (existing) stale = !(await hasCode(provider, existing))
    if (stale && !options.replaceStale)
      throw new DeploymentError('The addresses file points at addresses without code', {
        details: { file: deploymentFile(dir, chainId) },
        hint: 'Wrong chain, or a restarted dev chain: pass replaceStale to redeploy.',
      })
    if (existing && !stale) {
      if (await sortitionCurrent(provider, existing)) return existing
      if (!options.replaceStale)
        throw new DeploymentError('The addresses file points at an older CommitteeSortition', {
          details: {
            file: deploymentFile(dir, chainId),
            committeeSortition: existing.committeeSortition,
            reason: 'old-sortition',
          },
          hint: 'It scores tickets × 2⁶⁴, this version × 2⁹⁶ (ADR 0024, amended): pass replaceStale to deploy the current contracts.',
        })
    }
  }
  const deployer = await signer.getAddress()
  const admin = options.admin ?? deployer
  // Every transaction at an explicit nonce: the hub's address (nonce + 4) is named in the
  // registry's and the controller's constructors before the hub exists.
  const nonce = await provider.getTransactionCount(deployer, 'pending')
  const hub = getCreateAddress({ from: deployer, nonce: nonce + 4 })
  const deploy = async (
    abi: InterfaceAbi,
    bytecode: string,
    args: unknown[],
    at: number,
  ): Promise<string> => {
    const factory = new ContractFactory(abi, bytecode, signer as ContractRunner)
    const c = await factory.deploy(...args, { nonce: at })
    await c.waitForDeployment()
    return c.getAddress()
  }
  const startBlock = await provider.getBlockNumber()
  const adminDelay = options.adminDelay ?? DEFAULT_PARAMETERS.adminDelay
  // The deployer may name the controller once even when another account is the admin.
  const nodeRegistry = await deploy(
    nodeRegistryAbi,
    nodeRegistryBytecode,
    [
      admin,
      options.minStake ?? DEFAULT_PARAMETERS.minStake,
      options.unbondingDelay ?? DEFAULT_PARAMETERS.unbondingDelay,
      adminDelay,
      [hub],
    ],
    nonce,
  )
  // The controller deploys its own CapsuleRegistry (the only account allowed to count runs).
  const accessController = await deploy(
    accessControllerAbi,
    accessControllerBytecode,
    [
      nodeRegistry,
      admin,
      options.grantWindow ?? DEFAULT_PARAMETERS.grantWindow,
      options.disputeWindow ?? DEFAULT_PARAMETERS.disputeWindow,
      options.auditWindow ?? DEFAULT_PARAMETERS.auditWindow,
      options.withdrawalDelay ?? DEFAULT_PARAMETERS.withdrawalDelay,
      adminDelay,
      [hub],
    ],
    nonce + 1,
  )
  // Fast-path audits draw a fee shortfall from stake through the controller (docs/adr/0006).
  const registry = new Contract(nodeRegistry, nodeRegistryAbi, signer as ContractRunner)
  await (
    await registry.getFunction('setAccessController')(accessController, { nonce: nonce + 2 })
  ).wait()
  const settlement = await deploySettlementAt(
    signer,
    { nodeRegistry, accessController },
    options.settlement ?? {},
    nonce + 3,
  )
  if (settlement.attestationHub !== hub)
    throw new DeploymentError('The hub was not deployed at the address the registry names', {
      details: { expected: hub, deployed: settlement.attestationHub },
      hint: 'Another transaction of the deployer got in between: deploy again from an idle account.',
    })
  const controller = new Contract(accessController, accessControllerAbi, provider)
  const capsuleRegistry = getAddress(String(await controller.getFunction('capsuleRegistry')()))
  const addresses: DigicapAddresses = {
    chainId: String(chainId),
    capsuleRegistry,
    nodeRegistry,
    accessController,
    committeeSortition: settlement.committeeSortition,
    attestationHub: settlement.attestationHub,
    deployBlock: startBlock + 1,
  }
  if (dir !== undefined) {
    mkdirSync(dir, { recursive: true })
    const file = deploymentFile(dir, chainId)
    const tmp = `${file}.${process.pid}.tmp`
    writeFileSync(tmp, `${JSON.stringify(addresses, null, 2)}\n`)
    renameSync(tmp, file)
  }
  return addresses
}

/** Typed contracts for a deployment. */
export interface DigicapContracts {
  readonly capsuleRegistry: CapsuleRegistryContract
  readonly nodeRegistry: NodeRegistryContract
  readonly accessController: AccessControllerContract
}

/**
 * Typed ethers contracts for `addresses`, connected to `runner` (a signer to send, a provider to read).
 *
 * @example
 * ```ts
 * const { accessController } = connectDigicap(addresses, provider)
 * const grant = await accessController.getGrant(grantId)
 * ```
 */
export function connectDigicap(
  addresses: Pick<DigicapAddresses, 'capsuleRegistry' | 'nodeRegistry' | 'accessController'>,
  runner: ContractRunner,
): DigicapContracts {
  return {
    capsuleRegistry: new Contract(
      addresses.capsuleRegistry,
      capsuleRegistryAbi,
      runner,
    ) as unknown as CapsuleRegistryContract,
    nodeRegistry: new Contract(
      addresses.nodeRegistry,
      nodeRegistryAbi,
      runner,
    ) as unknown as NodeRegistryContract,
    accessController: new Contract(
      addresses.accessController,
      accessControllerAbi,
      runner,
    ) as unknown as AccessControllerContract,
  }
}

/** A typed handle on any IAccessPolicy (to evaluate it with `eth_call`). */
export function connectPolicy(address: string, runner: ContractRunner): IAccessPolicyContract {
  return new Contract(address, iAccessPolicyAbi, runner) as unknown as IAccessPolicyContract
}
