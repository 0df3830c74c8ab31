/**
 * An executor node for the length of one call: `@digicap/executor/node`'s composition (the one
 * executor-node runs too) on the network's RPC, with the caller's account and identity.
 */
import type { SandboxSet } from '@digicap/executor'
import { type ExecutorNode, openExecutorNode } from '@digicap/executor/node'
import type { DigicapNetwork } from '../networks/registry.ts'
import type { DigicapSigner } from '../signer/signer.ts'

export interface ExecutorIdentity {
  /**
   * The executor's account: any signer (its key need not be in this process). It signs
   * access requests and results; registration and the chain path also need its
   * `signTransaction` (`localSigner` has it).
   */
  readonly signer: DigicapSigner
  /** The 32-byte seed of the libp2p identity registered in NodeRegistry. */
  readonly identity: Uint8Array
}

export interface ExecutorSessionOptions {
  readonly listen?: readonly string[] | undefined
  readonly peers?: readonly string[] | undefined
  readonly sandboxes?: SandboxSet | undefined
  /** Start the key-release handler (runs need it; registration does not). */
  readonly start: boolean
}

export function openExecutorSession(
  network: DigicapNetwork,
  who: ExecutorIdentity,
  options: ExecutorSessionOptions,
): Promise<ExecutorNode> {
  return openExecutorNode({
    rpcUrl: network.rpcUrl,
    chainId: network.chainId,
    contracts: network.addresses,
    signer: who.signer,
    libp2pSeed: who.identity,
    listen: options.listen,
    bootstrap: options.peers,
    keyguardAddrs: options.peers,
    sandboxes: options.sandboxes,
    start: options.start,
  })
}
