/**
 * A committee member taking part in one job's PBFT: a {@link PbftReplica} wired to a
 * {@link PbftTransport}. The composition only; both parts are usable alone.
 */
import type { PbftCertificate } from './certificate.ts'
import type { PbftCommittee } from './committee.ts'
import type { EquivocationProof } from './equivocation.ts'
import { PbftReplica, type PbftReplicaOptions, type PbftSend } from './replica.ts'
import {
  createPbftTransport,
  type PbftHost,
  type PbftTransport,
  type PbftTransportOptions,
} from './transport.ts'

export interface PbftNodeOptions extends Omit<PbftReplicaOptions, 'send' | 'committee'> {
  node: PbftHost
  committee: PbftCommittee
  /** Transport limits (queue, frame size, timeout, dial). */
  transport?: Omit<PbftTransportOptions, 'node' | 'committee' | 'onMessage'>
  /** Wraps the outgoing path (fault injection in tests). */
  wrapSend?: (send: PbftSend) => PbftSend
}

export interface PbftNode {
  readonly replica: PbftReplica
  readonly transport: PbftTransport
  /** The certificate, once decided. */
  readonly decided: Promise<PbftCertificate>
  /** Equivocation proofs seen so far. */
  readonly equivocations: EquivocationProof[]
  start(): Promise<void>
  stop(): Promise<void>
}

/** Registers the protocol on `options.node` and returns the (not yet started) member. */
export async function createPbftNode(options: PbftNodeOptions): Promise<PbftNode> {
  const equivocations: EquivocationProof[] = []
  let replica: PbftReplica | undefined
  const transport = await createPbftTransport({
    ...options.transport,
    node: options.node,
    committee: options.committee,
    onMessage: async (from, message) => {
      await replica?.receive(from, message)
    },
  })
  const send: PbftSend = (to, message) => transport.send(to, message)
  replica = new PbftReplica({
    ...options,
    send: options.wrapSend === undefined ? send : options.wrapSend(send),
    onEquivocation: (proof) => {
      equivocations.push(proof)
      options.onEquivocation?.(proof)
    },
  })
  const r = replica
  return {
    replica: r,
    transport,
    decided: r.decided,
    equivocations,
    start: () => r.start(),
    async stop() {
      r.stop()
      await transport.stop()
    },
  }
}
