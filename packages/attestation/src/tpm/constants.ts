/** TPM 2.0 constants used by the parsers (TPM 2.0 Part 2, Structures). */

/** TPM_GENERATED_VALUE: the magic a TPM puts in every TPMS_ATTEST it makes. */
export const TPM_GENERATED_VALUE = 0xff544347
/** TPM_ST_ATTEST_QUOTE. */
export const TPM_ST_ATTEST_QUOTE = 0x8018

/** TPM_ALG_ID values this package knows. */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  ECSCHNORR: 0x001c,
  KDF1_SP800_56A: 0x0020,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CFB: 0x0043,
} as const

/** Hash algorithms and their digest sizes (node:crypto names). */
export const HASHES: ReadonlyMap<
  number,
  { name: 'sha1' | 'sha256' | 'sha384' | 'sha512'; size: number }
> = new Map([
  [TPM_ALG.SHA1, { name: 'sha1', size: 20 }],
  [TPM_ALG.SHA256, { name: 'sha256', size: 32 }],
  [TPM_ALG.SHA384, { name: 'sha384', size: 48 }],
  [TPM_ALG.SHA512, { name: 'sha512', size: 64 }],
])

/** TPM_ECC_CURVE values and their coordinate sizes (node:crypto JWK curve names). */
export const ECC_CURVES: ReadonlyMap<number, { name: 'P-256' | 'P-384' | 'P-521'; size: number }> =
  new Map([
    [0x0003, { name: 'P-256', size: 32 }],
    [0x0004, { name: 'P-384', size: 48 }],
    [0x0005, { name: 'P-521', size: 66 }],
  ])

/** TPMA_OBJECT bits an attestation key must have. */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const

/** sizeof(TPMU_HA): the largest digest, and so the largest TPM2B_DIGEST / TPM2B_DATA. */
export const MAX_DIGEST = 64
/** sizeof(TPMU_NAME): a handle or nameAlg ‖ digest. */
export const MAX_NAME = 2 + MAX_DIGEST
/** PCR_SELECT_MAX for a TPM with up to 32 PCRs. */
export const MAX_PCR_SELECT = 4
/** HASH_COUNT: at most this many banks in a TPML_PCR_SELECTION. */
export const MAX_PCR_BANKS = 16
/** MAX_RSA_KEY_BYTES for 4096-bit keys. */
export const MAX_RSA_KEY_BYTES = 512
/** MAX_ECC_KEY_BYTES for P-521. */
export const MAX_ECC_KEY_BYTES = 66
