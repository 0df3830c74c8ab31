/**
 * A registered attestation key (AK) and the EK it was made under, taken from ONE record:
 * the AK's TPM2B_PUBLIC parsed, checked to be a restricted signing key that only the TPM
 * holds, imported into node:crypto once, and its qualified name computed through the EK
 * (a quote's qualifiedSigner is that qualified name, so it also proves the AK's parent).
 */
import { createHash, type KeyObject } from 'node:crypto'
import { concatBytes } from '../bytes.ts'
import { QuoteVerificationError } from '../errors.ts'
import { HASHES, TPM_ALG, TPMA_OBJECT } from '../tpm/constants.ts'
import { publicKeyObject } from '../tpm/key-object.ts'
import { parsePublic, type TpmPublic } from '../tpm/public.ts'

/** TPM_RH_ENDORSEMENT: the qualified name of the endorsement hierarchy is its handle. */
const TPM_RH_ENDORSEMENT = Uint8Array.of(0x40, 0x00, 0x00, 0x0b)

/** What a node registers: its EK and its AK, both as TPM2B_PUBLIC bytes. */
export interface AttestationKeyRecord {
  /** TPM2B_PUBLIC of the endorsement key (`tpm2_createek -u`). */
  ekPublic: Uint8Array
  /** TPM2B_PUBLIC of the attestation key, a child of that EK (`tpm2_createak -u … -f tss`). */
  akPublic: Uint8Array
}

export interface AttestationKey {
  readonly public: TpmPublic
  readonly ek: TpmPublic
  /** nameAlg ‖ H(TPMT_PUBLIC) of the AK. */
  readonly name: Uint8Array
  /**
   * QN(AK) = nameAlg ‖ H(QN(EK) ‖ name(AK)), QN(EK) = nameAlg ‖ H(TPM_RH_ENDORSEMENT ‖ name(EK))
   * (TPM 2.0 Part 1 §16): what the TPM writes as a quote's qualifiedSigner.
   */
  readonly qualifiedName: Uint8Array
  readonly key: KeyObject
}

function qualify(parent: Uint8Array, child: TpmPublic): Uint8Array {
  const hash = HASHES.get(child.nameAlg)?.name ?? 'sha256'
  const digest = createHash(hash).update(parent).update(child.name).digest()
  return concatBytes(child.name.subarray(0, 2), digest)
}

const REQUIRED =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.sign

function refuse(shortMessage: string, details: Record<string, unknown>): never {
  throw new QuoteVerificationError('QUOTE_AK', shortMessage, {
    details,
    hint: 'Register an AK made by the TPM (tpm2_createak): restricted, sign, fixedTPM, sha256.',
  })
}

/**
 * Parses and checks a registered EK and AK. A restricted key signs only digests the TPM made itself, so it cannot sign a forged
 * TPMS_ATTEST; a non-restricted key could, and is refused.
 *
 * @throws {TpmFormatError} either key's bytes are not a TPM2B_PUBLIC (`details.structure`).
 * @throws {QuoteVerificationError} `QUOTE_AK`: wrong attributes, a scheme not on sha256, a bad key.
 */
export function importAttestationKey(record: AttestationKeyRecord): AttestationKey {
  const ek = parsePublic(record.ekPublic)
  const pub = parsePublic(record.akPublic)
  if (
    (pub.objectAttributes & REQUIRED) !== REQUIRED ||
    pub.objectAttributes & TPMA_OBJECT.decrypt
  ) {
    refuse('The AK is not a restricted signing key held only by the TPM', {
      field: 'objectAttributes',
      objectAttributes: pub.objectAttributes,
    })
  }
  if (pub.scheme.scheme !== TPM_ALG.NULL && pub.scheme.hashAlg !== TPM_ALG.SHA256) {
    refuse('The AK signing scheme does not use sha256', {
      field: 'parameters.scheme',
      scheme: pub.scheme,
    })
  }
  let key: KeyObject
  try {
    key = publicKeyObject(pub)
  } catch (cause) {
    refuse('The AK public key is not a valid key', { field: 'unique', cause: String(cause) })
  }
  const qualifiedName = qualify(qualify(TPM_RH_ENDORSEMENT, ek), pub)
  return { public: pub, ek, name: pub.name, qualifiedName, key }
}
