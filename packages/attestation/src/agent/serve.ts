/**
 * The executor's side of `/digicap/attest/1.0.0`: each challenge gets a fresh quote from the
 * agent for exactly the challenge's nonce, grant and key; each activation request the secret
 * TPM2_ActivateCredential recovers. A TPM failure (and a failed activation) becomes an
 * `internal` error reply (the handler's error stays local, reported to `onError`).
 */
import {
  attestServeProtocol,
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
  agent: Pick<AttestationAgent, 'quote'> & Partial<Pick<AttestationAgent, 'activateCredential'>>,
  options: ServeAttestationOptions = {},
): Promise<() => Promise<void>> {
  const { record, ...rest } = options
  const handleOptions: HandleOptions = {
    ...rest,
    gate: rest.gate ?? createStreamGate({ ...DEFAULT_ATTEST_CHALLENGES }),
  }
  return handle(
    node,
    attestServeProtocol,
    async (req, context) => {
      if (req.t === 'attest-activate') {
        if (agent.activateCredential === undefined) {
          throw new Error('This agent does not activate credentials')
        }
        const secret = await agent.activateCredential({
          idObject: req.idObject,
          encryptedSecret: req.encryptedSecret,
        })
        return { t: 'attest-activated' as const, secret }
      }
      return {
        t: 'attest-evidence' as const,
        ...toWireEvidence({
          ...(await agent.quote(
            { nonce: req.nonce, grantId: req.grantId, ephemeralPublicKey: req.ephemeralKey },
            { peer: context.peer.toString() },
          )),
          ...(record === undefined ? {} : { record }),
        }),
      }
    },
    handleOptions,
  )
}
