/**
 * @packageDocumentation
 *
 * `@digicap/contracts/light` — the parts of this package that load no ethers: policy
 * expressions and their generated Solidity, a compiled policy's shape, the errors, the
 * owner's seal transactions (a policy's creation, `CapsuleRegistry.register`) signed with the
 * account's key and sent over plain JSON-RPC, and the hand ABI of the reads a run and a
 * receiver make (`getGrant`, `runCount`, `getCapsule`). `pi-node seal` uses only this entry: ethers
 * (~180 modules, ~30 MiB) loads there only to decode a revert.
 *
 * @example
 * ```ts
 * import { parsePolicyExpression, privateKeyTransactor, registerCapsuleCallData } from '@digicap/contracts/light'
 *
 * parsePolicyExpression('all(minReputation(50), maxRuns(3))')
 * const tx = privateKeyTransactor({ rpcUrl, chainId: 31337, privateKey })
 * const { hash } = await tx.send({ to: capsuleRegistry, data: registerCapsuleCallData(entry) })
 * ```
 */

export { type CompiledPolicy, POLICY_SOURCE_NAME } from './compiler/compiled-policy.ts'
export { COMPILER_SETTINGS, SOLC_VERSION } from './compiler/solc.ts'
export type { ContractsErrorCode } from './errors.ts'
export {
  ContractRevertError,
  PolicyCompileError,
  PolicyExpressionError,
  QuorumError,
  TransactionError,
} from './errors.ts'
export { type AbiParam, abiEncodeParams, functionSelector } from './light/abi-encode.ts'
export {
  type CapsuleRegistrationCall,
  policyCreationData,
  REGISTER_CAPSULE_SIGNATURE,
  registerCapsuleCallData,
} from './light/calls.ts'
export { createAddress } from './light/create-address.ts'
export {
  CAPSULE_NOT_FOUND_SELECTOR,
  CapsuleAbiError,
  type DecodedCapsule,
  type DecodedGrant,
  decodeGetCapsule,
  decodeGetGrant,
  decodeRunCount,
  GET_CAPSULE_SELECTOR,
  GET_GRANT_SELECTOR,
  GRANT_NOT_FOUND_SELECTOR,
  GrantAbiError,
  getCapsuleCallData,
  getGrantCallData,
  RUN_COUNT_SELECTOR,
  runCountCallData,
} from './light/registry-reads.ts'
export {
  type JsonRpcQuorum,
  type JsonRpcQuorumInit,
  jsonRpcQuorum,
  rpcUrlName,
} from './light/rpc-quorum.ts'
export {
  type KeyTransactor,
  type MinedTransaction,
  type PrivateKeyTransactorInit,
  privateKeyTransactor,
  type TransactionRequest,
} from './light/transactor.ts'
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
