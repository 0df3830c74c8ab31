/**
 * An executor node for the length of one call: `@digicap/executor/node`'s composition (the one
 * executor-node runs too) on the network's RPC, with the caller's account and identity.
 */
import type { SandboxSet } from '@digicap/executor'
import { type ExecutorNode, openExecutorNode } from '@digicap/executor/node'
import { SignerUnsupportedError } from '../errors.ts'
import type { DigicapNetwork } from '../networks/registry.ts'
import { type DigicapSigner, localKeyOf } from '../signer/signer.ts'

export interface ExecutorIdentity {
  /** The executor's account (made with `localSigner`: the executor signs in process). */
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

export async function openExecutorSession(
  network: DigicapNetwork,
  who: ExecutorIdentity,
  options: ExecutorSessionOptions,
): Promise<ExecutorNode> {
  const accountKey = localKeyOf(who.signer)
  if (accountKey === undefined) {
    throw new SignerUnsupportedError('Running a capsule needs the executor key in this process', {
      details: { address: who.signer.address },
      hint: 'The executor signs access requests and results itself: pass localSigner(key).',
    })
  }
  return openExecutorNode({
    rpcUrl: network.rpcUrl,
    chainId: network.chainId,
    contracts: network.addresses,
    accountKey,
    libp2pSeed: who.identity,
    listen: options.listen,
    bootstrap: options.peers,
    keyguardAddrs: options.peers,
    sandboxes: options.sandboxes,
    start: options.start,
  })
}
