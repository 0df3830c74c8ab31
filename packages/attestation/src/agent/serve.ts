/**
 * The executor's side of `/digicap/attest/1.0.0`: each challenge gets a fresh quote from the
 * agent for exactly the challenge's nonce, grant and key. A TPM failure becomes an `internal`
 * error reply (the handler's error stays local, reported to `onError`).
 */
import {
  attestProtocol,
  createStreamGate,
  type HandleOptions,
  handle,
  type ProtocolRegistrar,
} from '@digicap/protocol'
import { toWireEvidence } from '../protocol/evidence.ts'
import type { AttestationAgent } from './types.ts'

export interface ServeAttestationOptions extends HandleOptions {
  /** The node's encoded attestation record (SPEC.md §9), sent with every answer. */
  record?: Uint8Array
}

/**
 * Challenges in progress at once when no `gate` is given: per peer, and all peers together.
 * The agent quotes one at a time (the TPM is one device), so more would only queue TPM work
 * and buffers for whoever opens the most streams; beyond these a new stream is reset before
 * any byte is read (or takes the place of the oldest one still sending its challenge).
 */
export const DEFAULT_ATTEST_CHALLENGES = { maxPerPeer: 2, maxTotal: 8 } as const

/**
 * Registers the attest protocol on `node`; returns the function that unregisters it. What
 * strangers can make the TPM do is bounded by a stream gate ({@link DEFAULT_ATTEST_CHALLENGES}
 * unless `options.gate` is given).
 */
export function serveAttestation(
  node: ProtocolRegistrar,
  agent: Pick<AttestationAgent, 'quote'>,
  options: ServeAttestationOptions = {},
): Promise<() => Promise<void>> {
  const { record, ...rest } = options
  const handleOptions: HandleOptions = {
    ...rest,
    gate: rest.gate ?? createStreamGate({ ...DEFAULT_ATTEST_CHALLENGES }),
  }
  return handle(
    node,
    attestProtocol,
    async (challenge) =>
      toWireEvidence({
        ...(await agent.quote({
          nonce: challenge.nonce,
          grantId: challenge.grantId,
          ephemeralPublicKey: challenge.ephemeralKey,
        })),
        ...(record === undefined ? {} : { record }),
      }),
    handleOptions,
  )
}
