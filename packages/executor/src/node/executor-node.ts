/**
 * The executor node: the executor (key releases, runs, deliveries) on a helia/libp2p node, the
 * result receiver on the same node, registration, and the optional TPM attestation. One copy,
 * composed by `executor-node` (from its data folder) and by the SDK's `runCapsule` (per call).
 */
import { heliaCapsuleStore } from '@digicap/p2p/light'
import {
  createConnectionGuard,
  createResultReceiver,
  headerResultCapsules,
} from '@digicap/protocol'
import { multiaddr } from '@multiformats/multiaddr'
import { ExecutorStateError } from '../errors.ts'
import { createExecutor } from '../executor.ts'
import { defaultSandboxes } from '../sandbox/defaults.ts'
import { ociSandbox } from '../sandbox/oci/oci-sandbox.ts'
import { holdPhasesForQuotes } from './phase-hold.ts'
import { NODE_ROLES, requireStakeFunds } from './register.ts'
import type {
  ExecutorNode,
  ExecutorNodeComponents,
  ExecutorNodeInit,
  RegisterNodeParameters,
} from './types.ts'

/**
 * @example
 * ```ts
 * const en = executorNode({ keyguardAddrs })({ node, chain, signer, attestation })
 * await en.start()
 * const run = await en.executor.runCapsule(cid, { fast: true })
 * await en.stop()
 * ```
 */
export function executorNode(
  init: ExecutorNodeInit = {},
): (components: ExecutorNodeComponents) => ExecutorNode {
  return (c) => {
    const store = heliaCapsuleStore(c.node.helia)
    const { attestation } = c
    const holding =
      attestation && init.attestHoldMs
        ? holdPhasesForQuotes(attestation.agent, init.attestHoldMs, {
            ...init.attestHold,
            committees: c.committees,
          })
        : undefined
    // Who may challenge the TPM ahead of strangers (ADR 0067): the configured keyguards, the
    // keyguard of each run in progress, the seated committees of its jobs (ADR 0070), and
    // whoever the components trust.
    const keyguards = new Set<string>()
    for (const a of init.keyguardAddrs ?? []) {
      try {
        const id = multiaddr(a)
          .getComponents()
          .findLast((part) => part.name === 'p2p')?.value
        if (id !== undefined) keyguards.add(id)
      } catch {
        // A bad address fails its dial in the run, where it is reported.
      }
    }
    const running = new Map<string, number>()
    const trusted = (peer: string): boolean =>
      keyguards.has(peer) ||
      running.has(peer) ||
      (c.committees?.trusts(peer) ?? false) ||
      (c.trustedChallengers?.(peer) ?? false)
    const trustChallenger = (peer: string): (() => void) => {
      running.set(peer, (running.get(peer) ?? 0) + 1)
      let done = false
      return () => {
        if (done) return
        done = true
        const n = (running.get(peer) ?? 1) - 1
        if (n <= 0) running.delete(peer)
        else running.set(peer, n)
      }
    }
    const executor = createExecutor(init)({
      libp2p: c.node.libp2p,
      store,
      chain: c.chain,
      signer: c.signer,
      sandboxes: c.sandboxes ?? {
        ...defaultSandboxes(),
        ...(init.oci ? { oci: ociSandbox({ ...(init.oci === true ? {} : init.oci), store }) } : {}),
      },
      // With a TPM every run is measured into PCR 23 (the run's hooks reach the agent here).
      ...(attestation === undefined ? {} : { attestation: holding?.run ?? attestation.agent }),
      ...(c.logger === undefined ? {} : { logger: c.logger }),
      ...(c.pendingDeliveries === undefined ? {} : { pendingDeliveries: c.pendingDeliveries }),
      trustChallenger,
      ...(c.committees === undefined
        ? {}
        : { watchCommittee: (grantId: Uint8Array) => c.committees?.watch(grantId) }),
    })
    let unserve: (() => Promise<void>) | undefined
    let untrustGuard: (() => void) | undefined
    return {
      node: c.node,
      store,
      chain: c.chain,
      executor,
      peerId: c.node.peerId,
      address: c.signer.address,
      attestation,
      committees: c.committees,
      async start() {
        if (attestation && !unserve) {
          const { serveAttestation } = await import('@digicap/attestation/agent')
          // PCR 23 is not reset here: after a crash it holds the crashed run (run-pcr.ts).
          // Strangers that keep challenging past their rate are cut at the connection (ADR 0030).
          const guard = c.attestGuard ?? createConnectionGuard()()
          untrustGuard = guard.trust((peer) => trusted(peer.toString()))
          unserve = await serveAttestation(c.node.libp2p, holding?.served ?? attestation.agent, {
            record: attestation.recordBytes,
            trustedChallengers: trusted,
            guard,
          })
        }
        if (!executor.started) await executor.start()
      },
      async stop() {
        c.committees?.stop()
        await executor.stop()
        await unserve?.()
        unserve = undefined
        untrustGuard?.()
        untrustGuard = undefined
      },
      async register(p: RegisterNodeParameters) {
        if (c.funds) await requireStakeFunds(c.funds, c.signer.address, p.stake)
        const attestationKeyHash = attestation?.hash ?? new Uint8Array(32)
        const transaction = await c.chain.registerNode({
          peerId: c.node.libp2p.peerId.toMultihash().bytes,
          attestationKeyHash,
          roles: p.roles ?? NODE_ROLES.executor,
          stake: p.stake,
        })
        return { transaction, attestationKeyHash }
      },
      receiver(privateKey) {
        if (!c.resultGrants) {
          throw new ExecutorStateError('This node has no grant source for a result receiver', {
            hint: 'Pass resultGrants (e.g. ethersResultGrants) in the components.',
          })
        }
        return createResultReceiver({ privateKey })({
          libp2p: c.node.libp2p,
          store,
          grants: c.resultGrants,
          // Check 11: only capsules whose owner-signed header names this receiver.
          capsules: headerResultCapsules({ registry: c.chain, store }),
          ...(c.resultReplays === undefined ? {} : { replays: c.resultReplays }),
        })
      },
    }
  }
}
