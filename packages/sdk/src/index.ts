/**
 * @packageDocumentation
 *
 * `@digicap/sdk` — Digicap in a few calls, for programs that build on capsules.
 *
 * This entry is the light side: named networks, signers, and `openReceiver`, which takes and
 * opens results with only libp2p, helia and JSON-RPC (no executor, no compiler, no chain
 * binary). Running capsules is in `@digicap/sdk/run` (it needs `@digicap/executor`).
 *
 * Guarantees of `openReceiver`:
 * - a result is taken only when signed by the executor its grant names on chain, for that
 *   grant and capsule, sealed to this receiver's key, and only once;
 * - every refusal is an `error` event with its reason code, never a crash;
 * - memory stays bounded whatever peers send (stream gate, rate limit, queue caps).
 *
 * @example
 * ```ts
 * import { generateReceiverKey, openReceiver } from '@digicap/sdk'
 *
 * const key = generateReceiverKey()
 * const receiver = await openReceiver({ network: 'local', key: key.privateKey })
 * // name receiver.receiver in a capsule; then:
 * const { output, executor } = await receiver.waitForResult()
 * await receiver.stop()
 * ```
 */

export type { SdkErrorCode } from './errors.ts'
export {
  ChainMismatchError,
  ChainReadError,
  NetworkInvalidError,
  NetworkUnknownError,
  ResultTimeoutError,
  SignerUnsupportedError,
} from './errors.ts'
export { generateIdentity, generateReceiverKey } from './keys.ts'
export type { DefineNetworkParameters, DigicapNetwork, NetworkRef } from './networks/registry.ts'
export { defineNetwork, getNetwork, listNetworks, registerNetwork } from './networks/registry.ts'
export type { ChainReadOptions, ResultGrantSource } from './receive/chain-grants.ts'
export { chainCapsuleRegistry, chainResultGrants } from './receive/chain-grants.ts'
export type {
  OpenReceiverParameters,
  ReceivedResult,
  Receiver,
  ResultFilter,
  WaitForResultOptions,
} from './receive/open-receiver.ts'
export { openReceiver } from './receive/open-receiver.ts'
export type { DigicapSigner } from './signer/signer.ts'
export { localSigner } from './signer/signer.ts'
