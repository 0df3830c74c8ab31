/**
 * @packageDocumentation
 *
 * `@digicap/contracts` — the chain side of Digicap: capsule registry, unlock policies compiled
 * to Solidity, access grants with fee escrow, and the node registry (stake + reputation).
 *
 * Guarantees:
 * - Policies are views: `checkAccess` over `eth_call` gives the answer `requestAccess` would.
 * - A grant exists on chain only if the capsule's policy allowed it at that block; fast-path
 *   grants need the executor's EIP-712 signature and the capsule owner (or its operator).
 * - ETH is conserved: each contract's balance equals its `totalHeld` (stake, unbonding,
 *   escrow, deposits, credits); every payout path is reentrancy-guarded.
 * - Generated policy sources are deterministic; `@digicap/contracts/compiler` compiles them with
 *   a pinned solc in process, so anyone can rebuild the bytecode of a deployed policy.
 * - This entry needs neither solc nor anvil: the compiler (`/compiler`, solc as an optional
 *   peer) and the local chain for tests (`/testing`, anvil as an optional peer) are entry
 *   points of their own, installed only where they are used (ADR 0019).
 * - `createRpcQuorum` serves a read only when `quorum` RPCs return it identically at one block
 *   whose hash they agree on; otherwise `QuorumError` names the RPCs that dissented.
 * - Every error crossing this package's boundary is a `DigicapError` with a stable `code`.
 *
 * @example
 * ```ts
 * import { all, connectDigicap, deployDigicap, maxRuns, minReputation } from '@digicap/contracts'
 * import { deployPolicy } from '@digicap/contracts/compiler'
 *
 * const addresses = await deployDigicap(owner, { deploymentsDir: './deployments' })
 * const { capsuleRegistry } = connectDigicap(addresses, owner)
 * const policy = await deployPolicy(owner, all(minReputation(50), maxRuns(3)), {
 *   nodeRegistry: addresses.nodeRegistry,
 * })
 * await capsuleRegistry.register(capsuleId, policy.address, cid, plaintextHash, peerId, keyId)
 * ```
 */

export type {
  DeployDigicapOptions,
  DigicapAddresses,
  DigicapContracts,
  DigicapParameters,
} from './deploy.ts'
export {
  connectDigicap,
  connectPolicy,
  DEFAULT_PARAMETERS,
  deployDigicap,
  deploymentFile,
  readDeployment,
} from './deploy.ts'
export type { ContractsErrorCode } from './errors.ts'
export {
  AnvilError,
  ContractRevertError,
  DeploymentError,
  PolicyCompileError,
  PolicyExpressionError,
  QuorumError,
  TransactionError,
} from './errors.ts'
export { digicapEthersSigner, ethersSigner } from './ethers-signer.ts'
export { parseEvents } from './events.ts'
export type { SignedAccessRequest } from './fastpath.ts'
export {
  ACCESS_REQUEST_TYPES,
  accessRequestDomain,
  computeGrantId,
  hashAccessRequest,
  jobParamsHash,
} from './fastpath.ts'
export {
  accessControllerAbi,
  accessControllerBytecode,
  attestationHubAbi,
  attestationHubBytecode,
  capsuleRegistryAbi,
  committeeSortitionAbi,
  committeeSortitionBytecode,
  iAccessPolicyAbi,
  iCapsuleRegistryAbi,
  iNodeRegistryAbi,
  nodeRegistryAbi,
  nodeRegistryBytecode,
  policyLibrarySources,
} from './generated/artifacts.ts'
export type * from './generated/bindings.ts'
export type { DigicapNetwork } from './networks/index.ts'
export { LOCAL_DEPLOYER, LOCAL_NETWORK, NETWORKS } from './networks/index.ts'
export type { PolicyExpression } from './policy/expression.ts'
export {
  after,
  all,
  allowlist,
  any,
  attested,
  before,
  denylist,
  environment,
  fee,
  formatPolicyExpression,
  maxRuns,
  minReputation,
  normalizePolicyExpression,
  not,
  POLICY_LIMITS,
} from './policy/expression.ts'
export { parsePolicyExpression } from './policy/parse.ts'
export {
  GENERATED_POLICY_CONTRACT,
  generatePolicySource,
  POLICY_GENERATOR_VERSION,
  requiresAttestation,
} from './policy/solidity.ts'
export { privateKeyAccount } from './private-key-account.ts'
export { createProvider } from './provider.ts'
export { createRpcQuorum } from './quorum/ethers-rpc-quorum.ts'
export type {
  DisagreementEvent,
  Dissent,
  PinnedBlock,
  PinnedReadContext,
  RpcQuorum,
  RpcQuorumInit,
} from './quorum/rpc-quorum.ts'
export type { ReasonCode, ReasonName } from './reasons.ts'
export { Reason, reasonName } from './reasons.ts'
export { decodeRevert, withRevertDecoding } from './revert.ts'
export { serialSigner } from './serial-signer.ts'
export type {
  AdminCall,
  SettlementAddresses,
  SettlementContracts,
  SettlementParameters,
} from './settlement.ts'
export {
  connectSettlement,
  DEFAULT_SETTLEMENT_PARAMETERS,
  deploySettlement,
  queueAdminCalls,
  sendAdminCalls,
  settlementRoleCalls,
} from './settlement.ts'
