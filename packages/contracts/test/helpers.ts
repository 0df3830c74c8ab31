import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  Contract,
  ContractFactory,
  hexlify,
  parseEther,
  randomBytes,
  type TransactionResponse,
  type Wallet,
} from 'ethers'
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest'
import { type Anvil, startAnvil } from '../src/anvil.ts'
import { type CompiledPolicy, compilePolicy } from '../src/compiler/policy.ts'
import { compileSolidity } from '../src/compiler/solc.ts'
import {
  connectDigicap,
  type DigicapAddresses,
  type DigicapContracts,
  deployDigicap,
} from '../src/deploy.ts'
import { ContractRevertError } from '../src/errors.ts'
import { formatPolicyExpression, type PolicyExpression } from '../src/policy/expression.ts'
import { generatePolicySource } from '../src/policy/solidity.ts'
import { decodeRevert } from '../src/revert.ts'

export const MIN_STAKE = parseEther('0.01')
export const GRANT_WINDOW = 600
export const DISPUTE_WINDOW = 3600
export const UNBONDING_DELAY = 7 * 24 * 3600
export const AUDIT_WINDOW = 600
export const WITHDRAWAL_DELAY = 3600
/** Admin timelock: longer than the unbonding delay, the dispute window and the withdrawal delay. */
export const ADMIN_DELAY = 8 * 24 * 3600
export const CID = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'
export const ROLE_EXECUTOR = 1
export const ROLE_VERIFIER = 2

export const bytes32 = (): string => hexlify(randomBytes(32))
export const peerId = (): string => hexlify(randomBytes(38))

export interface World {
  anvil: Anvil
  addresses: DigicapAddresses
  /** Contracts connected to the deployer (admin). */
  c: DigicapContracts
  deployer: Wallet
  owner: Wallet
  executor: Wallet
  other: Wallet
  settler: Wallet
}

/** One anvil per test file, Digicap deployed, the executor registered. */
export async function setupWorld(): Promise<World> {
  const anvil = await startAnvil()
  const [deployer, owner, executor, other, settler] = anvil.signers as Wallet[]
  const addresses = await deployDigicap(deployer!, {
    minStake: MIN_STAKE,
    grantWindow: GRANT_WINDOW,
    disputeWindow: DISPUTE_WINDOW,
    auditWindow: AUDIT_WINDOW,
    withdrawalDelay: WITHDRAWAL_DELAY,
    unbondingDelay: UNBONDING_DELAY,
    adminDelay: ADMIN_DELAY,
  })
  const c = connectDigicap(addresses, deployer!)
  await send(
    c.nodeRegistry
      .connect(executor!)
      .register(peerId(), bytes32(), ROLE_EXECUTOR, { value: MIN_STAKE }),
  )
  return {
    anvil,
    addresses,
    c,
    deployer: deployer!,
    owner: owner!,
    executor: executor!,
    other: other!,
    settler: settler!,
  }
}

/**
 * Registers the per-file hooks: one world (anvil + Digicap) for the file, `onReady` once it is up
 * (before the first snapshot), and an `evm_snapshot`/`evm_revert` around every test.
 */
export function useWorld(onReady: (w: World) => void | Promise<void>): void {
  let w: World | undefined
  let snap: string
  beforeAll(async () => {
    w = await setupWorld()
    await onReady(w)
  })
  afterAll(() => w?.anvil.stop())
  beforeEach(async () => {
    snap = await w!.anvil.snapshot()
  })
  afterEach(async () => {
    await w!.anvil.revert(snap)
  })
}

export async function send(tx: Promise<TransactionResponse>) {
  const receipt = await (await tx).wait()
  if (!receipt) throw new Error('no receipt')
  return receipt
}

const compiledRules = new Map<string, CompiledPolicy>()

/**
 * Deploys `rule` (compiled once per rule per test file: deployPolicy itself is tested in
 * policy-onchain) and registers a fresh capsule under it for `owner`.
 */
export async function capsuleWith(w: World, rule: PolicyExpression, owner: Wallet = w.owner) {
  const key = formatPolicyExpression(rule)
  let compiled = compiledRules.get(key)
  if (!compiled) {
    compiled = compilePolicy(generatePolicySource(rule))
    compiledRules.set(key, compiled)
  }
  const factory = new ContractFactory(
    compiled.abi as Record<string, unknown>[],
    compiled.bytecode,
    owner,
  )
  const deployed = await factory.deploy(w.addresses.nodeRegistry)
  await deployed.waitForDeployment()
  const policy = { address: await deployed.getAddress() }
  const capsuleId = bytes32()
  await send(
    w.c.capsuleRegistry
      .connect(owner)
      .register(capsuleId, policy.address, CID, bytes32(), peerId(), bytes32()),
  )
  return { capsuleId, policy: policy.address }
}

/** Asserts that `promise` reverts with the Digicap custom error `name` (and `args`, when given). */
export async function expectRevert(
  promise: Promise<unknown>,
  name: string,
  args?: readonly unknown[],
) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => decodeRevert(e),
  )
  expect(err, `expected a revert with ${name}`).toBeInstanceOf(ContractRevertError)
  const revert = err as ContractRevertError
  expect(revert.code).toBe('CONTRACT_REVERT')
  expect(revert.errorName).toBe(name)
  if (args) expect(revert.args).toEqual(args)
  return revert
}

let attackerArtifact: { abi: readonly Record<string, unknown>[]; bytecode: string } | undefined

/** Deploys the test-only reentrancy attacker (compiled here, in the test). */
export async function deployAttacker(signer: Wallet): Promise<Contract> {
  if (!attackerArtifact) {
    const source = readFileSync(join(import.meta.dirname, 'fixtures/Attacker.sol'), 'utf8')
    const out = compileSolidity({ 'Attacker.sol': source })
    attackerArtifact = out['Attacker.sol']!.Attacker!
  }
  const factory = new ContractFactory(
    attackerArtifact.abi as Record<string, unknown>[],
    attackerArtifact.bytecode,
    signer,
  )
  const c = await factory.deploy()
  await c.waitForDeployment()
  return new Contract(
    await c.getAddress(),
    attackerArtifact.abi as Record<string, unknown>[],
    signer,
  )
}

export async function balanceOf(w: World, address: string): Promise<bigint> {
  return w.anvil.provider.getBalance(address)
}

/** Each contract's balance equals the funds it says it holds. */
export async function expectConserved(w: World) {
  expect(await balanceOf(w, w.addresses.accessController)).toBe(
    await w.c.accessController.totalHeld(),
  )
  expect(await balanceOf(w, w.addresses.nodeRegistry)).toBe(await w.c.nodeRegistry.totalHeld())
}

/**
 * Sends a timelocked admin call of `contract` (NodeRegistry or AccessController) the only way
 * there is: the admin queues its calldata, the chain moves `ADMIN_DELAY` ahead, the admin sends it.
 */
export async function timelocked(
  w: World,
  contract: {
    getAddress(): Promise<string>
    interface: { encodeFunctionData(f: string, a: readonly unknown[]): string }
  },
  method: string,
  args: readonly unknown[],
) {
  const target = await contract.getAddress()
  const data = contract.interface.encodeFunctionData(method, args)
  const guarded = new Contract(
    target,
    ['function queueAdminCall(bytes data) returns (uint256)'],
    w.deployer,
  )
  await send(guarded.getFunction('queueAdminCall')(data))
  await w.anvil.provider.send('evm_increaseTime', [ADMIN_DELAY])
  return send(w.deployer.sendTransaction({ to: target, data }))
}
