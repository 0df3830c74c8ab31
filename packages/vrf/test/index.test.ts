import { describe, expect, it } from 'vitest'
import * as api from '../src/index.ts'

describe('public surface', () => {
  it('exports exactly these names (a change here is a deliberate API change)', () => {
    expect(Object.keys(api).sort()).toMatchInlineSnapshot(`
      [
        "P256_SHA256_TAI",
        "SECP256K1_SHA256_TAI",
        "VrfEncodeError",
        "VrfKeyError",
        "VrfProofError",
        "challenge",
        "decodeProof",
        "decodePublicKey",
        "encodeToCurve",
        "onchainProof",
        "proofToHash",
        "prove",
        "publicKeyOf",
        "suiteLengths",
        "verify",
      ]
    `)
  })
})
