/**
 * TPM2_MakeCredential in TypeScript (TPM 2.0 Part 1 §24, Part 3 §12.6), for an RSA or ECC EK: the
 * verifier wraps a secret so that only the TPM holding that EK, and only for the object with
 * that name (the AK), can recover it with TPM2_ActivateCredential. The output is what
 * `tpm2_makecredential` writes and `tpm2_activatecredential -i` reads.
 *
 *   RSA EK:  seed       random, |H_ekNameAlg|
 *            encSecret  RSA-OAEP(EK, seed), hash ekNameAlg, label "IDENTITY\0"
 *   ECC EK:  (d, Q)     ephemeral key pair on the EK's curve; Z = x(d·Q_EK)
 *            seed       KDFe(ekNameAlg, Z, "IDENTITY", x(Q), x(Q_EK), |H| bits)
 *            encSecret  TPMS_ECC_POINT(Q)
 *   symKey        KDFa(ekNameAlg, seed, "STORAGE", name(AK), ∅, ekSymKeyBits)
 *   hmacKey       KDFa(ekNameAlg, seed, "INTEGRITY", ∅, ∅, |H| bits)
 *   encIdentity   AES-CFB(symKey, IV 0, TPM2B_DIGEST(secret))
 *   outerHMAC     HMAC(hmacKey, encIdentity ‖ name(AK))
 *   idObject      TPM2B_ID_OBJECT(TPM2B_DIGEST(outerHMAC) ‖ encIdentity)
 */
import {
  constants,
  createCipheriv,
  createHash,
  createHmac,
  diffieHellman,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
} from 'node:crypto'
import { kdfa } from '@digicap/tpm'
import { concatBytes } from '../bytes.ts'
import { CredentialError } from '../errors.ts'
import { ECC_CURVES, HASHES, TPM_ALG, TPMA_OBJECT } from '../tpm/constants.ts'
import { publicKeyObject } from '../tpm/key-object.ts'
import { type EccPublic, parsePublic, type RsaPublic, type TpmPublic } from '../tpm/public.ts'

export interface MakeCredentialParameters {
  /** TPM2B_PUBLIC of the EK the credential is wrapped to (`tpm2_createek -u`). */
  ekPublic: Uint8Array
  /** Name of the object the TPM must hold for activation: the AK's nameAlg ‖ H(TPMT_PUBLIC). */
  objectName: Uint8Array
  /** The secret to wrap, 1 to |H_ekNameAlg| bytes. */
  secret: Uint8Array
}

export interface Credential {
  /** TPM2B_ID_OBJECT, with its size. */
  idObject: Uint8Array
  /** TPM2B_ENCRYPTED_SECRET, with its size. */
  encryptedSecret: Uint8Array
}

const IDENTITY_LABEL = Buffer.from('IDENTITY\0', 'latin1')

function u16(n: number): Uint8Array {
  return Uint8Array.of(n >> 8, n & 0xff)
}

function fail(shortMessage: string, details: Record<string, unknown>): never {
  throw new CredentialError(shortMessage, {
    details,
    hint: 'Wrap to the RSA or ECC EK of the node (TCG EK template) and a secret no longer than its name digest.',
  })
}

function checkEk(ekPublic: Uint8Array): TpmPublic {
  const ek = parsePublic(ekPublic)
  const need = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt
  if ((ek.objectAttributes & need) !== need || ek.objectAttributes & TPMA_OBJECT.sign) {
    fail('The EK is not a restricted decryption key', { field: 'objectAttributes' })
  }
  const sym = ek.symmetric
  if (
    sym.algorithm !== TPM_ALG.AES ||
    sym.mode !== TPM_ALG.CFB ||
    (sym.keyBits !== 128 && sym.keyBits !== 256)
  ) {
    fail('The EK symmetric definition is not AES-CFB', {
      field: 'parameters.symmetric',
      symmetric: sym,
    })
  }
  return ek
}

/**
 * The deterministic part of MakeCredential, from a given seed. Exported for tests that
 * compare against fixed values; real callers use {@link makeCredential}, which draws the seed.
 */
function rsaWrapSeed(ek: RsaPublic, hash: string, seed: Uint8Array): Uint8Array {
  return new Uint8Array(
    publicEncrypt(
      {
        key: publicKeyObject(ek),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: hash,
        oaepLabel: IDENTITY_LABEL,
      },
      seed,
    ),
  )
}

/**
 * KDFe (TPM 2.0 Part 1 §11.4.10.3, SP 800-56A concatenation KDF):
 * K(i) = H([i]32 ‖ Z ‖ label ‖ 0x00 ‖ partyU ‖ partyV), concatenated, cut to `bits`.
 */
export function kdfe(
  hash: 'sha1' | 'sha256' | 'sha384' | 'sha512',
  z: Uint8Array,
  label: string,
  partyU: Uint8Array,
  partyV: Uint8Array,
  bits: number,
): Uint8Array {
  const bytes = Math.ceil(bits / 8)
  const out = new Uint8Array(bytes)
  const labelBytes = Buffer.from(`${label}\0`, 'latin1')
  let at = 0
  for (let counter = 1; at < bytes; counter++) {
    const c = new Uint8Array(4)
    new DataView(c.buffer).setUint32(0, counter)
    const block = createHash(hash)
      .update(c)
      .update(z)
      .update(labelBytes)
      .update(partyU)
      .update(partyV)
      .digest()
    out.set(block.subarray(0, Math.min(block.length, bytes - at)), at)
    at += block.length
  }
  return out
}

const NODE_CURVES = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' } as const

/** An ephemeral ECDH with the EK: the seed and the TPMS_ECC_POINT the TPM needs to derive it. */
function eccSeed(
  ek: EccPublic,
  hash: { name: 'sha1' | 'sha256' | 'sha384' | 'sha512'; size: number },
): { seed: Uint8Array; point: Uint8Array } {
  const curve = ECC_CURVES.get(ek.curveId)
  if (curve === undefined) fail('Unsupported EK curve', { field: 'parameters.curveID' })
  let z: Uint8Array
  let ephemeral: { x: Uint8Array; y: Uint8Array }
  try {
    const pair = generateKeyPairSync('ec', { namedCurve: NODE_CURVES[curve.name] })
    z = new Uint8Array(
      diffieHellman({ privateKey: pair.privateKey, publicKey: publicKeyObject(ek) }),
    )
    const jwk = pair.publicKey.export({ format: 'jwk' })
    ephemeral = {
      x: new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url')),
      y: new Uint8Array(Buffer.from(jwk.y ?? '', 'base64url')),
    }
  } catch {
    fail('The EK point is not a valid point on its curve', { field: 'unique.ecc' })
  }
  const seed = kdfe(hash.name, z, 'IDENTITY', ephemeral.x, ek.x, hash.size * 8)
  z.fill(0)
  const point = concatBytes(
    u16(ephemeral.x.length),
    ephemeral.x,
    u16(ephemeral.y.length),
    ephemeral.y,
  )
  return { seed, point }
}

export function credentialFromSeed(
  params: MakeCredentialParameters,
  seed: Uint8Array,
  encryptedSecret?: Uint8Array,
): Credential {
  const ek = checkEk(params.ekPublic)
  const hash = HASHES.get(ek.nameAlg)
  if (hash === undefined) fail('Unsupported EK name algorithm', { field: 'nameAlg' })
  if (
    !(params.secret instanceof Uint8Array) ||
    params.secret.length < 1 ||
    params.secret.length > hash.size
  ) {
    fail('The secret must be 1 to digest-size bytes', { field: 'secret', max: hash.size })
  }
  const nameHash = HASHES.get(((params.objectName[0] ?? 0) << 8) | (params.objectName[1] ?? 0))
  if (nameHash === undefined || params.objectName.length !== 2 + nameHash.size) {
    fail('objectName is not nameAlg ‖ digest', {
      field: 'objectName',
      length: params.objectName.length,
    })
  }
  if (seed.length !== hash.size) fail('The seed must be digest-size bytes', { field: 'seed' })
  const keyBits = ek.symmetric.keyBits ?? 128
  const symKey = kdfa(hash.name, seed, 'STORAGE', params.objectName, new Uint8Array(0), keyBits)
  const hmacKey = kdfa(
    hash.name,
    seed,
    'INTEGRITY',
    new Uint8Array(0),
    new Uint8Array(0),
    hash.size * 8,
  )
  const cipher = createCipheriv(`aes-${keyBits}-cfb`, symKey, new Uint8Array(16))
  const encIdentity = concatBytes(
    cipher.update(concatBytes(u16(params.secret.length), params.secret)),
    cipher.final(),
  )
  const outerHmac = createHmac(hash.name, hmacKey)
    .update(encIdentity)
    .update(params.objectName)
    .digest()
  const idBody = concatBytes(u16(outerHmac.length), outerHmac, encIdentity)
  const wrapped = encryptedSecret ?? rsaWrapSeed(ek as RsaPublic, hash.name, seed)
  return {
    idObject: concatBytes(u16(idBody.length), idBody),
    encryptedSecret: concatBytes(u16(wrapped.length), wrapped),
  }
}

/**
 * Wraps `secret` to the EK for the object named `objectName` (TPM2_MakeCredential).
 *
 * @throws {TpmFormatError} the EK public is malformed.
 * @throws {CredentialError} the EK is not a supported RSA or ECC EK, or an argument has the wrong size.
 */
export function makeCredential(params: MakeCredentialParameters): Credential {
  const ek = checkEk(params.ekPublic)
  const hash = HASHES.get(ek.nameAlg)
  if (hash === undefined) fail('Unsupported EK name algorithm', { field: 'nameAlg' })
  if (ek.type === TPM_ALG.RSA)
    return credentialFromSeed(params, new Uint8Array(randomBytes(hash.size)))
  const { seed, point } = eccSeed(ek, hash)
  try {
    return credentialFromSeed(params, seed, point)
  } finally {
    seed.fill(0)
  }
}

/** tpm2-tools' credential file (`tpm2_makecredential -o`, `tpm2_activatecredential -i`). */
export function encodeCredentialFile(credential: Credential): Uint8Array {
  const header = Uint8Array.of(0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1)
  return concatBytes(header, credential.idObject, credential.encryptedSecret)
}
