/** TPM 2.0 constants of sessions and the commands run in them (Part 2). */

export const TPM_CC = {
  StartAuthSession: 0x176,
  ReadPublic: 0x173,
  FlushContext: 0x165,
  RSA_Decrypt: 0x159,
  PolicyPCR: 0x17f,
  PolicyAuthorize: 0x16a,
  PolicyGetDigest: 0x189,
  LoadExternal: 0x167,
  VerifySignature: 0x177,
  PCR_Read: 0x17e,
  PCR_Extend: 0x182,
  PolicyNV: 0x149,
  PolicySigned: 0x160,
  NV_DefineSpace: 0x12a,
  NV_UndefineSpace: 0x122,
  NV_Increment: 0x134,
  NV_Read: 0x14e,
  NV_ReadPublic: 0x169,
} as const

export const TPM_ALG = {
  RSA: 0x0001,
  SHA256: 0x000b,
  AES: 0x0006,
  NULL: 0x0010,
  ECC: 0x0023,
  ECDSA: 0x0018,
  OAEP: 0x0017,
  CFB: 0x0043,
} as const

export const TPM_RH_NULL = 0x40000007
export const TPM_RH_OWNER = 0x40000001

export const TPM_SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const

/** TPMA_SESSION bits. */
export const SESSION_ATTR = {
  continueSession: 0x01,
  decrypt: 0x20,
  encrypt: 0x40,
  /** An audit session: legal on a command without authorization handles (`TPM2_PCR_Read`), and its response HMAC authenticates the answer. */
  audit: 0x80,
} as const

/** SHA-256 digest size: nonces, session keys and salts of a SHA-256 session. */
export const SHA256_SIZE = 32
/** AES-128 key and block size in bits. */
export const AES128_BITS = 128
