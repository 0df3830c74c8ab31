/**
 * The executor's attestation identity (opt-in, needs a TPM): the agent of
 * `@digicap/attestation/agent` on the configured TCTI, and the registration record (EK, AK,
 * boot PCRs) kept in the data folder, whose SHA-256 is NodeRegistry's `attestationKeyHash`.
 */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import {
  type AttestationRecord,
  attestationRecordHash,
  decodeAttestationRecord,
  encodeAttestationRecord,
} from '@digicap/attestation'
import { type AttestationAgent, createAttestationAgent } from '@digicap/attestation/agent'
import { executorNodePaths } from './config.ts'
import { ConfigError } from './errors.ts'

export interface NodeAttestation {
  agent: AttestationAgent
  record: AttestationRecord
  /** The encoded record (sent with every attestation answer). */
  recordBytes: Uint8Array
  /** SHA-256 of `recordBytes`: the `attestationKeyHash` to register. */
  hash: Uint8Array
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

/**
 * Creates the EK and AK on first use (the agent's `provision` is idempotent) and writes the
 * record; afterwards loads it and checks the TPM still holds the same EK and AK.
 * @throws {ConfigError} the record file is unreadable or names keys this TPM does not hold.
 * @throws the agent's `@digicap/tpm` errors (TPM unreachable, lockout).
 */
export async function loadNodeAttestation(dataDir: string, tcti: string): Promise<NodeAttestation> {
  const file = executorNodePaths(dataDir).attestationRecord
  const agent = createAttestationAgent({ tcti })
  const keys = await agent.provision()
  let record: AttestationRecord
  if (existsSync(file)) {
    try {
      record = decodeAttestationRecord(await readFile(file))
    } catch (cause) {
      throw new ConfigError('Cannot read the attestation record', { cause, details: { file } })
    }
    if (!same(record.ekPublic, keys.ekPublic) || !same(record.akPublic, keys.akPublic)) {
      throw new ConfigError('The attestation record names keys this TPM does not hold', {
        details: { file, tcti },
        hint: 'Point the config (tcti) at the TPM this node registered with, or move the record aside and register again (update the NodeRegistry).',
      })
    }
  } else {
    // The boot PCRs as the TPM reports them now: the node's reference values.
    const random = () => new Uint8Array(randomBytes(32))
    const q = await agent.quote({
      nonce: random(),
      grantId: random(),
      ephemeralPublicKey: random(),
    })
    record = { ...keys, bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)) }
    await writeFile(file, encodeAttestationRecord(record), { mode: 0o600, flag: 'wx' })
  }
  const recordBytes = encodeAttestationRecord(record)
  return { agent, record, recordBytes, hash: attestationRecordHash(recordBytes) }
}
