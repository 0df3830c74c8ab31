/**
 * The node's attestation identity (opt-in, needs a TPM): the agent's EK and AK and the
 * registration record (EK, AK, boot PCRs) kept in a file, whose SHA-256 is NodeRegistry's
 * `attestationKeyHash`.
 */
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import type { AttestationRecord } from '@digicap/attestation'
import type { AttestationAgent } from '@digicap/attestation/agent'
import { equalBytes } from '@digicap/capsule-core'
import { ConfigError } from '@digicap/cli-kit'
import type { NodeAttestation } from './types.ts'

export type LoadNodeAttestationParameters = (
  | {
      /** The agent on the node's TPM (`createAttestationAgent({ tcti })`). */
      readonly agent: AttestationAgent
    }
  | {
      /** Or the TPM, for `@digicap/attestation/agent`'s agent: `device:/dev/tpmrm0`, `swtpm:…`. */
      readonly tcti: string
    }
) & {
  /** The registration record's file (written 0600 on first use). */
  readonly recordFile: string
}

/**
 * Creates the EK and AK on first use (the agent's `provision` is idempotent) and writes the
 * record; afterwards loads it and checks the TPM still holds the same EK and AK.
 * @throws {ConfigError} (cli-kit's) the record file is unreadable or names keys this TPM does not hold.
 * @throws the agent's `@digicap/tpm` errors (TPM unreachable, lockout).
 * @example
 * ```ts
 * const attestation = await loadNodeAttestation({
 *   agent: createAttestationAgent({ tcti: 'device:/dev/tpmrm0' }),
 *   recordFile: join(dataDir, 'attestation-record.bin'),
 * })
 * ```
 */
export async function loadNodeAttestation(
  p: LoadNodeAttestationParameters,
): Promise<NodeAttestation> {
  const file = p.recordFile
  const agent =
    'agent' in p
      ? p.agent
      : (await import('@digicap/attestation/agent')).createAttestationAgent({ tcti: p.tcti })
  const { attestationRecordHash, decodeAttestationRecord, encodeAttestationRecord } = await import(
    '@digicap/attestation'
  )
  const keys = await agent.provision()
  let record: AttestationRecord
  if (existsSync(file)) {
    try {
      record = decodeAttestationRecord(await readFile(file))
    } catch (cause) {
      throw new ConfigError('Cannot read the attestation record', { cause, details: { file } })
    }
    if (
      !equalBytes(record.ekPublic, keys.ekPublic) ||
      !equalBytes(record.akPublic, keys.akPublic)
    ) {
      throw new ConfigError('The attestation record names keys this TPM does not hold', {
        details: { file },
        hint: 'Point the config (tcti) at the TPM this node registered with, or move the record aside and register again (update the NodeRegistry).',
      })
    }
  } else {
    // The boot PCRs as the TPM reports them now: the node's reference values.
    const { recordFromAgent } = await import('@digicap/attestation/agent')
    record = await recordFromAgent(agent)
    await writeFile(file, encodeAttestationRecord(record), { mode: 0o600, flag: 'wx' })
  }
  const recordBytes = encodeAttestationRecord(record)
  return { agent, recordBytes, hash: attestationRecordHash(recordBytes) }
}
