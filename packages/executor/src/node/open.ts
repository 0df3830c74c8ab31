/**
 * The stock parts of an executor node, built and composed: the account's signer, a helia/libp2p
 * node on the registered identity, the registry read as plain JSON-RPC, and the ethers parts
 * (providers, the transaction sender, the result grants and funds readers) built on first use:
 * a run that sends no transaction never loads ethers (ADR 0052). Its `stop` also stops what it
 * built.
 */

import type { DigicapSigner } from '@digicap/capsule-core'
import { writeJsonAtomic } from '@digicap/cli-kit'
import type { SettlementAddresses } from '@digicap/contracts'
import { createDigicapNode, type DigicapNode, privateKeyFromSeed } from '@digicap/p2p/light'
import { createConnectionGuard, fileResultReplays } from '@digicap/protocol'
import type { ExecutorChain } from '../chain.ts'
import { filePendingDeliveries } from '../delivery/pending-file.ts'
import { jsonRpcGetCapsule, jsonRpcGrantReads } from '../registry/json-rpc-registry.ts'
import type { SandboxSet } from '../sandbox/select.ts'
import { accountSigner } from './account.ts'
import type { EthersParts } from './ethers-parts.ts'
import { executorNode } from './executor-node.ts'
import { hubCommittees } from './job-committees.ts'
import type {
  ExecutorChainConnection,
  ExecutorNode,
  ExecutorNodeComponents,
  ExecutorNodeInit,
  NodeAttestation,
} from './types.ts'
import type { VerifierChain } from './verifier/types.ts'

export interface OpenExecutorNodeParameters extends ExecutorNodeInit, ExecutorChainConnection {
  /**
   * The executor's account, any `DigicapSigner` (a hardware, TPM-held or remote signer): it
   * signs access requests and results; with `signTransaction` it also registers and requests
   * access on chain (without, only the fast path runs). Exactly one of `signer`, `accountKey`.
   */
  readonly signer?: DigicapSigner | undefined
  /** Or the account's secp256k1 key (32 bytes; the caller may zero it after). */
  readonly accountKey?: Uint8Array | undefined
  /** The 32-byte seed of the libp2p identity registered in NodeRegistry. */
  readonly libp2pSeed: Uint8Array
  /** Default `['/ip4/127.0.0.1/tcp/0']`. */
  readonly listen?: readonly string[] | undefined
  readonly bootstrap?: readonly string[] | undefined
  /**
   * Run gossipsub (capsule announcements, followed by a daemon). Default true; `false` for a
   * one-shot run, which then does not load it (ADR 0042).
   */
  readonly pubsub?: boolean | undefined
  /** Blocks and datastore on disk here; default in memory. */
  readonly ipfsDir?: string | undefined
  /** The result receiver's replay memory file; default in memory. */
  readonly receiverReplaysFile?: string | undefined
  /** Results waiting for offline receivers, kept across restarts; default in memory. */
  readonly pendingResultsDir?: string | undefined
  readonly attestation?: NodeAttestation | undefined
  /**
   * The committee settlement (AttestationHub, CommitteeSortition). With `attestation`, the node
   * reads who the hub seats on its jobs' committees (ADR 0070): only they end phase holds, and
   * they are trusted challengers.
   */
  readonly settlement?: SettlementAddresses | undefined
  readonly sandboxes?: SandboxSet | undefined
  /** Start it (key releases, attestation) before returning. Default true. */
  readonly start?: boolean | undefined
  /** Where the executor reports fallbacks and warnings (the daemon's logger). */
  readonly logger?: ExecutorNodeComponents['logger']
}

/**
 * @throws {InvalidArgumentError} (capsule-core's) for neither or both of `signer`, `accountKey`.
 * @throws `@digicap/p2p`'s `NodeStartError` (listen address taken, …); nothing is left running.
 * @example
 * ```ts
 * const en = await openExecutorNode({ rpcUrl, chainId, contracts, accountKey, libp2pSeed })
 * const run = await en.executor.runCapsule(cid)
 * await en.stop()
 * ```
 */
export async function openExecutorNode(p: OpenExecutorNodeParameters): Promise<ExecutorNode> {
  const signer = accountSigner(p)
  // ethers' parts, built once when a transaction, a grant or the funds are first asked for.
  let parts: Promise<EthersParts> | undefined
  const ethers = () => {
    parts ??= import('./ethers-parts.ts').then((m) => m.ethersParts(p, signer))
    return parts
  }
  // With a TPM the attest endpoint's guard also refuses cut strangers at the gater (ADR 0067).
  const attestGuard = p.attestation === undefined ? undefined : createConnectionGuard()()
  const node: DigicapNode = await createDigicapNode({
    ...(attestGuard === undefined ? {} : { connectionGater: attestGuard.gater }),
    privateKey: await privateKeyFromSeed(p.libp2pSeed),
    listen: p.listen ?? ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: p.bootstrap ?? [],
    pubsub: p.pubsub !== false,
    ...(p.ipfsDir === undefined ? {} : { dataDir: p.ipfsDir }),
  })
  // The one grant reader: the recorded-grant lookup and the receiver's, no ethers.
  const grantReads = jsonRpcGrantReads({
    rpcUrls: [p.rpcUrl, ...(p.readRpcUrls ?? [])],
    accessController: p.contracts.accessController,
    quorum: p.quorum,
  })
  const chain: ExecutorChain = {
    chainId: BigInt(p.chainId),
    capsuleRegistry: p.contracts.capsuleRegistry,
    accessController: p.contracts.accessController,
    // Every run's read, through the same quorum of RPCs, without ethers.
    getCapsule: jsonRpcGetCapsule({
      rpcUrls: [p.rpcUrl, ...(p.readRpcUrls ?? [])],
      capsuleRegistry: p.contracts.capsuleRegistry,
      quorum: p.quorum,
    }),
    requestAccess: async (r) => (await ethers()).chain.requestAccess(r),
    // A fast-path run finds the id its audit was recorded under (ADR 0073), without ethers.
    ...grantReads,
    registerNode: async (r) => (await ethers()).chain.registerNode(r),
    isRegistered: async (a) => (await ethers()).chain.isRegistered(a),
  }
  // Read on first use (a chain-path grant of an attested run), through ethers' provider.
  let committeeReads: Promise<Pick<VerifierChain, 'seats' | 'node'>> | undefined
  const reads = (settlement: SettlementAddresses) => {
    committeeReads ??= Promise.all([ethers(), import('./verifier/ethers-chain.ts')]).then(
      ([{ provider }, { ethersVerifierChain }]) =>
        ethersVerifierChain({
          addresses: { chainId: String(p.chainId), ...p.contracts },
          settlement,
          runner: provider,
        }),
    )
    return committeeReads
  }
  const { settlement } = p
  const committees =
    p.attestation === undefined || settlement === undefined
      ? undefined
      : hubCommittees()({
          chain: {
            seats: async (jobId) => (await reads(settlement)).seats(jobId),
            node: async (address) => (await reads(settlement)).node(address),
          },
        })
  const en = executorNode(p)({
    node,
    chain,
    signer,
    sandboxes: p.sandboxes,
    attestation: p.attestation,
    committees,
    attestGuard,
    logger: p.logger,
    funds: {
      balanceOf: async (a) => (await ethers()).funds.balanceOf(a),
      maxFeePerGas: async () => (await ethers()).funds.maxFeePerGas(),
    },
    resultGrants: {
      domain: {
        chainId: BigInt(p.chainId),
        verifyingContract: p.contracts.accessController as `0x${string}`,
      },
      getGrant: grantReads.getGrant,
    },
    resultReplays:
      p.receiverReplaysFile === undefined
        ? undefined
        : fileResultReplays({ path: p.receiverReplaysFile })({ writeJsonAtomic }),
    pendingDeliveries:
      p.pendingResultsDir === undefined
        ? undefined
        : filePendingDeliveries({ dir: p.pendingResultsDir })({ writeJsonAtomic }),
  })
  const stop = async () => {
    await en.stop()
    await node.stop()
    if (parts !== undefined) (await parts.catch(() => undefined))?.destroy()
  }
  if (p.start !== false)
    await en.start().catch(async (err) => {
      await stop()
      throw err
    })
  return { ...en, stop }
}
