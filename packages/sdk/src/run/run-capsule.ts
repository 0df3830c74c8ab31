/**
 * `runCapsule`: fetch a capsule, get its key by the chain or the fast path, run it in the
 * sandbox, deliver the sealed result to the receivers the capsule names, and return.
 */
import type { Delivery, RunTimings, SandboxSet, StageEvent } from '@digicap/executor'
import { ResultTimeoutError } from '../errors.ts'
import { getNetwork, type NetworkRef } from '../networks/registry.ts'
import { checkChainId } from '../receive/chain-grants.ts'
import { requireTransactionSigner } from '../signer/signer.ts'
import { type ExecutorIdentity, openExecutorSession } from './executor-session.ts'

export interface RunCapsuleParameters extends ExecutorIdentity {
  readonly network: NetworkRef
  readonly rpcUrl?: string | undefined
  /** The capsule's CID. */
  readonly cid: string
  /**
   * `fast`: a signed request to the keyguard, logged on chain after (any signer); `chain`: a
   * transaction (the signer needs `signTransaction`). Default `chain`.
   */
  readonly path?: 'chain' | 'fast' | undefined
  /** After a fast-path failure other than a policy refusal, try the chain. Default false. */
  readonly fallbackToChain?: boolean | undefined
  /** Multiaddrs to dial first: the keyguard, the receivers. */
  readonly peers?: readonly string[] | undefined
  readonly listen?: readonly string[] | undefined
  /** Program arguments (`digicap.args`, WASI argv). */
  readonly args?: readonly string[] | undefined
  /** Wei sent with a chain-path request. Default 0. */
  readonly fee?: bigint | undefined
  /** How long to wait for stored deliveries to reach receivers that were not connected. Default 30 000 ms. */
  readonly deliveryTimeoutMs?: number | undefined
  readonly sandboxes?: SandboxSet | undefined
  readonly onStage?: ((e: StageEvent) => void) | undefined
  readonly signal?: AbortSignal | undefined
}

export interface RunCapsuleReturnType {
  /** Hex ids (the run id is what a receiver's `waitForResult({ runId })` takes). */
  readonly runId: string
  readonly capsuleId: string
  readonly grantId: string
  readonly path: 'chain' | 'fast'
  /** What the program wrote (the executor sees it; receivers get it sealed). */
  readonly output: Uint8Array
  readonly deliveries: readonly Delivery[]
  readonly timings: RunTimings
}

/**
 * @throws the executor's typed errors (`ACCESS_DENIED` with the policy's reason, `CAPSULE_FETCH`,
 *   `SANDBOX_*`, …); {@link SignerUnsupportedError} for a signer without `signTransaction` when
 *   the run may send a transaction (the chain path, or `fallbackToChain`), before anything starts;
 *   {@link ResultTimeoutError} when a stored delivery found no receiver in time.
 */
export async function runCapsule(p: RunCapsuleParameters): Promise<RunCapsuleReturnType> {
  const network = getNetwork(p.network, { rpcUrl: p.rpcUrl })
  if (p.path !== 'fast' || p.fallbackToChain === true) {
    requireTransactionSigner(p.signer, 'A chain-path run')
  }
  await checkChainId(network)
  const session = await openExecutorSession(network, p, {
    listen: p.listen,
    peers: p.peers,
    sandboxes: p.sandboxes,
    start: true,
  })
  try {
    const r = await session.executor.runCapsule(p.cid, {
      fast: p.path === 'fast',
      fallbackToChain: p.fallbackToChain ?? false,
      ...(p.args === undefined ? {} : { args: p.args }),
      ...(p.fee === undefined ? {} : { fee: p.fee }),
      ...(p.peers === undefined ? {} : { keyguardAddrs: p.peers }),
      ...(p.onStage === undefined ? {} : { onStage: p.onStage }),
      ...(p.signal === undefined ? {} : { signal: p.signal }),
    })
    // A delivery `stored` waits in this node for its receiver to connect: stay up for it.
    const deadline = Date.now() + (p.deliveryTimeoutMs ?? 30_000)
    while (session.executor.pendingDeliveries() > 0) {
      if (Date.now() > deadline) {
        throw new ResultTimeoutError('A receiver did not connect to take its result', {
          details: { runId: r.runId, pending: session.executor.pendingDeliveries() },
          hint: 'Pass the receiver’s multiaddr in `peers`.',
        })
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    return {
      runId: r.runId,
      capsuleId: r.capsuleId,
      grantId: r.grantId,
      path: r.path,
      output: r.result,
      deliveries: r.deliveries,
      timings: r.timings,
    }
  } finally {
    await session.stop()
  }
}
