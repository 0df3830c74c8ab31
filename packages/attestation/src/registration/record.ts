/**
 * The attestation record a node registers (SPEC.md §9): its EK and AK public parts and its
 * boot PCR reference values, in one binary encoding whose SHA-256 is NodeRegistry's
 * `attestationKeyHash`. One record: the AK is only ever checked against the EK next to it.
 *
 *   "DGAR" ‖ u8 version (1) ‖ u16 len ‖ ekPublic ‖ u16 len ‖ akPublic ‖ 8 × 32 bytes (PCRs 0–7)
 */
import { createHash } from 'node:crypto'
import { concatBytes } from '../bytes.ts'
import { AttestationRecordError } from '../errors.ts'
import { importAttestationKey } from '../verifier/attestation-key.ts'

export interface AttestationRecord {
  /** TPM2B_PUBLIC of the EK. */
  ekPublic: Uint8Array
  /** TPM2B_PUBLIC of the AK. */
  akPublic: Uint8Array
  /** The node's reference values of PCRs 0–7 (sha256). */
  bootPcrs: ReadonlyMap<number, Uint8Array>
}

const MAGIC = Uint8Array.of(0x44, 0x47, 0x41, 0x52) // "DGAR"
export const ATTESTATION_RECORD_VERSION = 1
const MAX_PUBLIC = 1024

function fail(field: string, shortMessage: string): never {
  throw new AttestationRecordError(shortMessage, {
    details: { field },
    hint: 'Encode the record with encodeAttestationRecord from the agent’s provisioned keys.',
  })
}

const u16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff)

/**
 * @throws {AttestationRecordError} a missing boot PCR or a public part of the wrong size.
 * @throws {TpmFormatError | QuoteVerificationError} the EK/AK publics do not parse, or the AK is
 *   not a restricted signing key.
 */
export function encodeAttestationRecord(record: AttestationRecord): Uint8Array {
  importAttestationKey(record)
  const pcrs: Uint8Array[] = []
  for (let i = 0; i <= 7; i++) {
    const v = record.bootPcrs.get(i)
    if (!(v instanceof Uint8Array) || v.length !== 32)
      fail(`bootPcrs[${i}]`, 'A boot PCR value is missing')
    pcrs.push(v)
  }
  for (const f of ['ekPublic', 'akPublic'] as const) {
    if (record[f].length < 1 || record[f].length > MAX_PUBLIC) fail(f, `${f} has the wrong size`)
  }
  return concatBytes(
    MAGIC,
    Uint8Array.of(ATTESTATION_RECORD_VERSION),
    u16(record.ekPublic.length),
    record.ekPublic,
    u16(record.akPublic.length),
    record.akPublic,
    ...pcrs,
  )
}

/** @throws {AttestationRecordError} naming the field at fault. */
export function decodeAttestationRecord(bytes: Uint8Array): AttestationRecord {
  let at = 0
  const take = (n: number, field: string): Uint8Array => {
    if (at + n > bytes.length) fail(field, 'Truncated attestation record')
    const v = bytes.slice(at, at + n)
    at += n
    return v
  }
  const magic = take(4, 'magic')
  if (!magic.every((b, i) => b === MAGIC[i])) fail('magic', 'Not an attestation record')
  if (take(1, 'version')[0] !== ATTESTATION_RECORD_VERSION)
    fail('version', 'Unknown record version')
  const sized = (field: string) => {
    const [hi = 0, lo = 0] = take(2, `${field}.size`)
    const n = (hi << 8) | lo
    if (n < 1 || n > MAX_PUBLIC) fail(`${field}.size`, `${field} has the wrong size`)
    return take(n, field)
  }
  const ekPublic = sized('ekPublic')
  const akPublic = sized('akPublic')
  const bootPcrs = new Map<number, Uint8Array>()
  for (let i = 0; i <= 7; i++) bootPcrs.set(i, take(32, `bootPcrs[${i}]`))
  if (at !== bytes.length) fail('end', 'Trailing bytes after the attestation record')
  return { ekPublic, akPublic, bootPcrs }
}

/** SHA-256 of the encoded record: the value to register as `attestationKeyHash`. */
export function attestationRecordHash(record: AttestationRecord | Uint8Array): Uint8Array {
  const bytes = record instanceof Uint8Array ? record : encodeAttestationRecord(record)
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}
