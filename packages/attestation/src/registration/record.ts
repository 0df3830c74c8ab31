/**
 * The attestation record a node registers (SPEC.md §9): its EK and AK public parts and its
 * boot PCR reference values, in one binary encoding whose SHA-256 is NodeRegistry's
 * `attestationKeyHash`. One record: the AK is only ever checked against the EK next to it.
 *
 *   "DGAR" ‖ u8 version (1) ‖ u16 len ‖ ekPublic ‖ u16 len ‖ akPublic ‖ 8 × 32 bytes (PCRs 0–7)
 *   "DGAR" ‖ u8 version (2) ‖ the same ‖ u16 len ‖ EK certificate (X.509 DER)
 *
 * Version 2 carries the EK certificate the TPM's maker wrote into its NV (ADR 0069): the one
 * thing that says the EK is a TPM's and not a key pair made in software. A record without one is
 * still written as version 1, byte for byte, so registered hashes do not change.
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
  /** The EK certificate (X.509 DER) from the TPM's NV, when it has one (version 2). */
  ekCertificate?: Uint8Array | undefined
}

const MAGIC = Uint8Array.of(0x44, 0x47, 0x41, 0x52) // "DGAR"
/** The version a record without an EK certificate is written in. */
export const ATTESTATION_RECORD_VERSION = 1
/** The version a record with an EK certificate is written in. */
export const ATTESTATION_RECORD_VERSION_EK_CERTIFICATE = 2
const MAX_PUBLIC = 1024
/** An EK certificate is 1–2 KiB (TCG EK Credential Profile); NV indices are at most a few KiB. */
const MAX_CERTIFICATE = 4096

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
  const certificate = record.ekCertificate
  if (
    certificate !== undefined &&
    (!(certificate instanceof Uint8Array) ||
      certificate.length < 1 ||
      certificate.length > MAX_CERTIFICATE)
  ) {
    fail('ekCertificate', 'ekCertificate has the wrong size')
  }
  return concatBytes(
    MAGIC,
    Uint8Array.of(
      certificate === undefined
        ? ATTESTATION_RECORD_VERSION
        : ATTESTATION_RECORD_VERSION_EK_CERTIFICATE,
    ),
    u16(record.ekPublic.length),
    record.ekPublic,
    u16(record.akPublic.length),
    record.akPublic,
    ...pcrs,
    ...(certificate === undefined ? [] : [u16(certificate.length), certificate]),
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
  const version = take(1, 'version')[0]
  if (
    version !== ATTESTATION_RECORD_VERSION &&
    version !== ATTESTATION_RECORD_VERSION_EK_CERTIFICATE
  )
    fail('version', 'Unknown record version')
  const sized = (field: string, max = MAX_PUBLIC) => {
    const [hi = 0, lo = 0] = take(2, `${field}.size`)
    const n = (hi << 8) | lo
    if (n < 1 || n > max) fail(`${field}.size`, `${field} has the wrong size`)
    return take(n, field)
  }
  const ekPublic = sized('ekPublic')
  const akPublic = sized('akPublic')
  const bootPcrs = new Map<number, Uint8Array>()
  for (let i = 0; i <= 7; i++) bootPcrs.set(i, take(32, `bootPcrs[${i}]`))
  const ekCertificate =
    version === ATTESTATION_RECORD_VERSION_EK_CERTIFICATE
      ? sized('ekCertificate', MAX_CERTIFICATE)
      : undefined
  if (at !== bytes.length) fail('end', 'Trailing bytes after the attestation record')
  return { ekPublic, akPublic, bootPcrs, ...(ekCertificate === undefined ? {} : { ekCertificate }) }
}

/** SHA-256 of the encoded record: the value to register as `attestationKeyHash`. */
export function attestationRecordHash(record: AttestationRecord | Uint8Array): Uint8Array {
  const bytes = record instanceof Uint8Array ? record : encodeAttestationRecord(record)
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}
