import { describe, expect, it } from 'vitest'
import * as api from './index.ts'

describe('public surface', () => {
  it('exports exactly these names (change deliberately)', () => {
    expect(Object.keys(api).sort()).toMatchInlineSnapshot(`
      [
        "ACCESS_DOMAIN_NAME",
        "ACCESS_DOMAIN_VERSION",
        "ACCESS_REQUEST_TYPES",
        "CAPSULE_FORMAT_VERSION",
        "CAPSULE_MAGIC",
        "CAPSULE_PREAMBLE_LENGTH",
        "CAPSULE_SIGNATURE_LENGTH",
        "CAPSULE_TYPED_DATA_TYPES",
        "CHUNK_TAG_LENGTH",
        "CIPHER_SUITE_AES_256_GCM_STREAM",
        "CapsuleFormatError",
        "CapsuleIntegrityError",
        "CapsuleKeyError",
        "CapsuleLimitError",
        "CapsuleSignatureError",
        "CapsuleTruncatedError",
        "CapsuleVersionError",
        "DATA_KEY_LENGTH",
        "DEFAULT_CHUNK_SIZE",
        "DigicapError",
        "HPKE_OVERHEAD",
        "HpkeError",
        "InvalidArgumentError",
        "MAX_CHUNK_SIZE",
        "MAX_FILE_THREADS",
        "MAX_HEADER_LENGTH",
        "MAX_RECEIVERS",
        "MAX_STRING_LENGTH",
        "MAX_WRAPPED_KEYS",
        "MAX_WRAPPED_KEY_LENGTH",
        "MIN_CHUNK_SIZE",
        "PARALLEL_FILE_MIN_BYTES",
        "SIGNATURE_LENGTH",
        "X25519_KEY_LENGTH",
        "abiWord",
        "accessRequestDomain",
        "addressFromPrivateKey",
        "addressToBytes",
        "capsuleChunkRange",
        "capsuleHeaderHash",
        "capsuleId",
        "capsuleSigningDigest",
        "capsuleTypedData",
        "checkKeyCommitment",
        "checkWrappedKey",
        "checksumAddress",
        "commitAndSealFile",
        "commitPlaintextFile",
        "concatBytes",
        "createCapsuleHeader",
        "createPlaintextCommitment",
        "decodeCapsuleHeader",
        "decodeHpkeSealed",
        "encodeCapsuleHeader",
        "encodeHpkeSealed",
        "encodeTypedDataType",
        "equalBytes",
        "generateCapsuleId",
        "generateDataKey",
        "generateX25519KeyPair",
        "grantId",
        "hashStruct",
        "hashTypedData",
        "hashTypedDataDomain",
        "hexToBytes",
        "hpkeOpen",
        "hpkeSeal",
        "isAddress",
        "isHex",
        "leftPad32",
        "normalizeAddress",
        "openCapsule",
        "openChunk",
        "openFile",
        "openNodeStream",
        "openStream",
        "parseCapsuleHeader",
        "privateKeySigner",
        "recoverDigestSigner",
        "recoverTypedDataSigner",
        "sealCapsule",
        "sealFile",
        "sealNodeStream",
        "sealStream",
        "signCapsuleHeader",
        "signDigest",
        "signTypedDataWith",
        "strictCborDecodeOptions",
        "toHex",
        "verifyCapsuleHeader",
        "x25519PublicKey",
      ]
    `)
  })

  it('every error class is a DigicapError with its own stable code and name', () => {
    const classes = [
      [api.InvalidArgumentError, 'INVALID_ARGUMENT', 'InvalidArgumentError'],
      [api.CapsuleFormatError, 'CAPSULE_FORMAT', 'CapsuleFormatError'],
      [api.CapsuleVersionError, 'CAPSULE_VERSION', 'CapsuleVersionError'],
      [api.CapsuleTruncatedError, 'CAPSULE_TRUNCATED', 'CapsuleTruncatedError'],
      [api.CapsuleIntegrityError, 'CAPSULE_INTEGRITY', 'CapsuleIntegrityError'],
      [api.CapsuleSignatureError, 'CAPSULE_SIGNATURE', 'CapsuleSignatureError'],
      [api.CapsuleKeyError, 'CAPSULE_KEY', 'CapsuleKeyError'],
      [api.CapsuleLimitError, 'CAPSULE_LIMIT', 'CapsuleLimitError'],
      [api.HpkeError, 'HPKE', 'HpkeError'],
    ] as const
    for (const [Cls, code, name] of classes) {
      const err = new Cls('short', { details: { n: 1n, b: new Uint8Array(3) }, hint: 'do x' })
      expect(err).toBeInstanceOf(api.DigicapError)
      expect(err).toBeInstanceOf(Error)
      expect(err.code).toBe(code)
      expect(err.name).toBe(name)
      expect(err.message).toBe('short\nDetails: n=1n, b=<3 bytes>\nHint: do x')
    }
  })
})
