/**
 * The record a node registers, made from its agent: the EK and AK it provisions (with the EK
 * certificate, when the TPM has one) and PCRs 0–7 as the TPM reports them now, the node's
 * reference values (SPEC.md §9).
 */
import { randomBytes } from 'node:crypto'
import type { AttestationRecord } from '../registration/record.ts'
import type { AttestationAgent } from './types.ts'

/**
 * @throws the agent's `@digicap/tpm` errors (TPM unreachable, lockout).
 * @example
 * ```ts
 * const record = await recordFromAgent(agent)
 * await writeFile(file, encodeAttestationRecord(record))
 * ```
 */
export async function recordFromAgent(
  agent: Pick<AttestationAgent, 'provision' | 'quote'>,
): Promise<AttestationRecord> {
  const keys = await agent.provision()
  const random = () => new Uint8Array(randomBytes(32))
  // a quote for nothing: only its PCR values are kept
  const q = await agent.quote({ nonce: random(), grantId: random(), ephemeralPublicKey: random() })
  return { ...keys, bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)) }
}
