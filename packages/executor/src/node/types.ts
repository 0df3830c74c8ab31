/** The executor node's interfaces: what it is made of, and what it offers its front ends. */

import type { AttestationAgent } from '@digicap/attestation/agent'
import type { DigicapSigner } from '@digicap/capsule-core'
import type { CapsuleStore, DigicapNode } from '@digicap/p2p'
import type {
  ConnectionGuard,
  ResultGrantSource,
  ResultReceiver,
  ResultReplayStore,
} from '@digicap/protocol'
import type { ExecutorChain } from '../chain.ts'
import type { PendingDeliveryStore } from '../delivery/pending-file.ts'
import type { Executor, ExecutorComponents, ExecutorInit } from '../executor.ts'
import type { OciSandboxInit } from '../sandbox/oci/oci-sandbox.ts'
import type { SandboxSet } from '../sandbox/select.ts'
import type { JobCommittees } from './job-committees.ts'
import type { PhaseHoldOptions } from './phase-hold.ts'

/** The node's attestation identity (opt-in, needs a TPM): the agent and its registration record. */
export interface NodeAttestation {
  /** The TPM agent (EK, AK, PCR 23); the run's measurement hooks reach it here. */
  readonly agent: AttestationAgent
  /** The encoded registration record (EK, AK, boot PCRs), sent with every attestation answer. */
  readonly recordBytes: Uint8Array
  /** SHA-256 of `recordBytes`: NodeRegistry's `attestationKeyHash`. */
  readonly hash: Uint8Array
}

/** What registration reads of the account before it sends (ethers: `ethersChainFunds`). */
export interface ChainFunds {
  /** The account's balance, wei. */
  balanceOf(address: string): Promise<bigint>
  /** The most a unit of gas may cost now, wei. */
  maxFeePerGas(): Promise<bigint>
}

export interface ExecutorNodeComponents {
  /** libp2p + helia; its peer id is the one registered in NodeRegistry. */
  readonly node: DigicapNode
  readonly chain: ExecutorChain
  /**
   * The executor's account: signs access requests and results (EIP-712); `chain` sends its
   * transactions for the same account. Any signer; its key need not be in this process.
   */
  readonly signer: DigicapSigner
  readonly sandboxes?: SandboxSet | undefined
  /** With a TPM: started nodes answer `/digicap/attest/1.0.0` (PCR 23 is never reset on start). */
  readonly attestation?: NodeAttestation | undefined
  /** For `register`'s funds check; without it registration sends unchecked. */
  readonly funds?: ChainFunds | undefined
  /** For `receiver()`: who may deliver what (the chain's grants). */
  readonly resultGrants?: ResultGrantSource | undefined
  /** For `receiver()`: spent run and grant ids kept across restarts. */
  readonly resultReplays?: ResultReplayStore | undefined
  /** Results waiting for offline receivers, kept across restarts (`filePendingDeliveries`). */
  readonly pendingDeliveries?: PendingDeliveryStore | undefined
  readonly logger?: ExecutorComponents['logger']
  /**
   * With attestation: who the hub seated on each chain-path job's committee (`hubCommittees`,
   * ADR 0070). Only their quotes end a phase hold, and they are trusted challengers from the
   * grant on. Without it any peer quoting a held grant id counts (grant ids are public).
   */
  readonly committees?: JobCommittees | undefined
  /**
   * More challengers the attest endpoint trusts (base58 peer ids); the node trusts its
   * keyguards and its jobs' seated committees itself (ADR 0067, 0070).
   */
  readonly trustedChallengers?: ((peer: string) => boolean) | undefined
  /**
   * The attest endpoint's connection guard; pass the one whose `gater` the libp2p node was built
   * with (openExecutorNode does). Default: a fresh one (it cuts, but cannot refuse at the gater).
   */
  readonly attestGuard?: ConnectionGuard | undefined
}

export interface RegisterNodeParameters {
  /** NodeRegistry role bits (`NODE_ROLES`). Default `NODE_ROLES.executor`. */
  readonly roles?: number | undefined
  /** Stake, wei. */
  readonly stake: bigint
}

export interface RegisterNodeReturnType {
  readonly transaction: string
  /** What was registered: the attestation record's hash, or 32 zero bytes without a TPM. */
  readonly attestationKeyHash: Uint8Array
}

export interface ExecutorNode {
  readonly node: DigicapNode
  readonly store: CapsuleStore
  readonly chain: ExecutorChain
  readonly executor: Executor
  readonly peerId: string
  /** The executor's account address. */
  readonly address: string
  readonly attestation: NodeAttestation | undefined
  /** Who the hub seated on this node's jobs (the `committees` component; ADR 0070). */
  readonly committees: JobCommittees | undefined
  /** Starts the key-release handler; with attestation also serves attest (PCR 23 untouched). */
  start(): Promise<void>
  /** Stops what `start` started (the node itself is its builder's to stop). */
  stop(): Promise<void>
  /**
   * Stakes and registers the node's peer id and attestation key hash in NodeRegistry.
   * @throws {InsufficientFundsError} (cli-kit's) when the account cannot pay stake + gas.
   * @throws `@digicap/contracts`' `ContractRevertError` (`AlreadyRegistered`, `StakeTooLow`, …).
   */
  register(p: RegisterNodeParameters): Promise<RegisterNodeReturnType>
  /** A result receiver on this node's libp2p for `privateKey` (X25519). */
  receiver(privateKey: Uint8Array): ResultReceiver
}

/** The chain an executor node talks to: its RPCs and the registry contracts. */
export interface ExecutorChainConnection {
  readonly rpcUrl: string
  readonly chainId: number
  readonly contracts: {
    readonly capsuleRegistry: string
    readonly nodeRegistry: string
    readonly accessController: string
  }
  /** More RPCs of the same chain: registry reads go through a quorum of all of them. */
  readonly readRpcUrls?: readonly string[] | undefined
  /** RPCs that must agree on a registry read. Default: 1 for one RPC, else a majority. */
  readonly quorum?: number | undefined
}

export interface ExecutorNodeInit extends ExecutorInit {
  /**
   * Run image capsules (runtime `oci`) under runc, image blobs from this node's helia (opt-in:
   * it changes the environment measurement, and needs root, runc and umoci). `true` or the
   * sandbox's options. Ignored when the components pass their own sandboxes.
   */
  readonly oci?: boolean | Omit<OciSandboxInit, 'store'> | undefined
  /**
   * With attestation: hold each measured phase of a run (before, during, after) until the node
   * answered one attest quote for the run's grant id in it, at most this many ms per phase (for
   * a watching verifier; phase-hold.ts). Default: no hold.
   */
  readonly attestHoldMs?: number | undefined
  /**
   * With `attestHoldMs`: the distinct challengers each phase waits for (a committee's size),
   * and the grace after a phase's first quote for the others. Default 1 (one watching verifier).
   */
  readonly attestHold?: Omit<PhaseHoldOptions, 'committees'> | undefined
}
