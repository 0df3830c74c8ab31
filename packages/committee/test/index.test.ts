import { describe, expect, it } from 'vitest'
import * as api from '../src/index.ts'

describe('public surface', () => {
  it('exports exactly these names (a change here is a deliberate API change)', () => {
    expect(Object.keys(api).sort()).toMatchInlineSnapshot(`
      [
        "LOG2_FRACTION_BITS",
        "P256_SHA256_TAI",
        "REPUTATION_GROWTH_DIVISOR",
        "REPUTATION_INITIAL",
        "REPUTATION_MAX",
        "SECP256K1_SHA256_TAI",
        "SortitionError",
        "VrfEncodeError",
        "VrfKeyError",
        "VrfProofError",
        "challenge",
        "committeeSize",
        "decodeProof",
        "decodePublicKey",
        "drawCommittee",
        "drawTicket",
        "encodeToCurve",
        "jobSeed",
        "negLog2Uniform",
        "nextReputation",
        "onchainProof",
        "passesToReach",
        "proofToHash",
        "prove",
        "publicKeyOf",
        "rankTickets",
        "reputationAfter",
        "selectionWeight",
        "sortitionScore",
        "suiteLengths",
        "verify",
        "verifyTicket",
      ]
    `)
  })
})
