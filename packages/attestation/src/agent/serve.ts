/**
 * The executor's side of `/digicap/attest/1.0.0`: each challenge gets a fresh quote from the
 * agent for exactly the challenge's nonce, grant and key. A TPM failure becomes an `internal`
 * error reply (the handler's error stays local, reported to `onError`).
 */
import {
  attestProtocol,
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
 * Registers the attest protocol on `node`; returns the function that unregisters it. Pass a
 * `gate` or `maxReadingPerPeer` in `options` to bound what strangers can make the TPM do.
 */
export function serveAttestation(
  node: ProtocolRegistrar,
  agent: Pick<AttestationAgent, 'quote'>,
  options: ServeAttestationOptions = {},
): Promise<() => Promise<void>> {
  const { record, ...handleOptions } = options
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
