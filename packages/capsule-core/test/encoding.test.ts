/**
 * The one copy of hex, EIP-55 and strict CBOR options: the EIP-55 spec's own vectors, ethers
 * as a second opinion, and every non-canonical CBOR form the options must refuse.
 */
import { decode, encode } from 'cborg'
import { AbiCoder, getAddress, keccak256, TypedDataEncoder } from 'ethers'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ACCESS_REQUEST_TYPES,
  abiWord,
  accessRequestDomain,
  addressToBytes,
  checksumAddress,
  grantId,
  hashTypedData,
  hexToBytes,
  isAddress,
  isHex,
  leftPad32,
  normalizeAddress,
  parseReceiver,
  strictCborDecodeOptions,
  toHex,
} from '../src/index.ts'

// EIP-55 (eips.ethereum.org/EIPS/eip-55), "Test Cases".
const EIP55 = [
  '0x52908400098527886E0F7030069857D2E4169EE7',
  '0x8617E340B3D01FA5F11F306F4090FD50E238070D',
  '0xde709f2102306220921060314715629080e2fb77',
  '0x27b1fdb04752bbc536007a920d24acb045561c26',
  '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
  '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359',
  '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB',
  '0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb',
]

describe('hex', () => {
  it('round-trips any bytes, lowercase out, either case in', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const hex = toHex(bytes)
        expect(hex).toBe(hex.toLowerCase())
        expect(hexToBytes(hex)).toEqual(bytes)
        expect(hexToBytes(hex.toUpperCase().replace('0X', '0x'))).toEqual(bytes)
        expect(isHex(hex, bytes.length)).toBe(true)
      }),
    )
    expect(toHex(new Uint8Array(8).subarray(2, 4).fill(0xab))).toBe('0xabab')
  })

  it('refuses odd lengths, non-hex, a missing 0x and a wrong length, naming the field', () => {
    for (const bad of ['0x1', 'abcd', '0xgg', '0x 1', '', 7, null]) {
      expect(isHex(bad)).toBe(false)
      expect(() => hexToBytes(bad as string, { name: 'nonce' })).toThrow(
        expect.objectContaining({
          code: 'INVALID_ARGUMENT',
          details: expect.objectContaining({ field: 'nonce' }),
        }),
      )
    }
    expect(() => hexToBytes('0x1234', { length: 32, name: 'nonce' })).toThrow(
      /nonce must be 32 bytes/,
    )
  })
})

describe('EIP-55 addresses', () => {
  it('checksums the EIP-55 test cases (mixed-case ones exactly; all-caps/lower as ethers does)', () => {
    for (const a of EIP55) {
      const bytes = addressToBytes(a)
      expect(checksumAddress(bytes)).toBe(getAddress(a))
      expect(normalizeAddress(a)).toBe(getAddress(a))
      expect(isAddress(a)).toBe(true)
      if (a.slice(2) !== a.slice(2).toLowerCase() && a.slice(2) !== a.slice(2).toUpperCase()) {
        expect(checksumAddress(bytes)).toBe(a)
      }
    }
  })

  it('agrees with ethers on random addresses', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), (bytes) => {
        expect(checksumAddress(bytes)).toBe(getAddress(toHex(bytes)))
      }),
    )
  })

  it('refuses a wrong checksum (a typo) and anything not 20 bytes', () => {
    const typo = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD'
    expect(isAddress(typo)).toBe(false)
    expect(() => addressToBytes(typo, 'owner')).toThrow(/owner has a wrong EIP-55 checksum/)
    for (const bad of [
      '0x1234',
      `0x${'00'.repeat(21)}`,
      'de709f2102306220921060314715629080e2fb77',
      5,
    ]) {
      expect(isAddress(bad)).toBe(false)
      expect(() => addressToBytes(bad as string)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
      )
    }
    expect(() => checksumAddress(new Uint8Array(19))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })
})

describe('the access request struct', () => {
  it('hashes like ethers for random requests (the digest the contract checks)', () => {
    const word = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(toHex)
    fc.assert(
      fc.property(
        word,
        fc.uint8Array({ minLength: 20, maxLength: 20 }).map(checksumAddress),
        word,
        fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.bigInt({ min: 1n, max: 2n ** 64n }),
        (id, executor, key, fee, expiry, chainId) => {
          const domain = accessRequestDomain(chainId, executor)
          const message = {
            capsuleId: id,
            executor,
            ephemeralKey: key,
            measurement: id,
            jobParamsHash: key,
            fee,
            nonce: fee,
            expiry,
          }
          const td = { domain, types: ACCESS_REQUEST_TYPES, primaryType: 'AccessRequest', message }
          expect(toHex(hashTypedData(td))).toBe(
            TypedDataEncoder.hash(domain, ACCESS_REQUEST_TYPES, message),
          )
        },
      ),
      { numRuns: 50 },
    )
  })

  it('refuses a chain id that is not positive, and a bad contract address', () => {
    for (const chainId of [0, -1, 1.5, 2n ** 256n]) {
      expect(() =>
        accessRequestDomain(chainId, '0x5FbDB2315678afecb367f032d93F642f64180aa3'),
      ).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    }
    expect(() => accessRequestDomain(1, '0x5FbDB2315678afecb367f032d93F642f64180aA3')).toThrow(
      /checksum/,
    )
  })
})

describe('strict CBOR decode options', () => {
  const refuse = (hex: string) =>
    expect(() => decode(hexToBytes(hex), strictCborDecodeOptions())).toThrow()

  it('decode canonical maps', () => {
    const bytes = encode({ a: 1, b: new Uint8Array([1]) })
    expect(decode(bytes, strictCborDecodeOptions())).toEqual({ a: 1, b: new Uint8Array([1]) })
  })

  it('refuse each non-canonical or ambiguous form', () => {
    refuse('0xa2616101616102') // duplicate key
    refuse('0x1801') // 1 written in two bytes (non-minimal)
    refuse('0x9f01ff') // indefinite-length array
    refuse('0xf7') // undefined
    refuse('0xf97e00') // NaN
    refuse('0xf97c00') // Infinity
    refuse('0xc11a514b67b0') // tag 1 (epoch time)
    refuse('0x0102') // trailing bytes
    refuse('0x1b0020000000000000') // 2^53: a bigint unless allowed
  })

  it('allow bigints only when asked, and hand out a fresh object each time', () => {
    expect(
      decode(hexToBytes('0x1b0020000000000000'), strictCborDecodeOptions({ allowBigInt: true })),
    ).toBe(2n ** 53n)
    const a = strictCborDecodeOptions()
    a.strict = false
    expect(strictCborDecodeOptions().strict).toBe(true)
  })
})

describe('ABI words and the grant id', () => {
  it('abiWord encodes like ethers (uint256 and two-complement int256) and refuses the rest', () => {
    const coder = AbiCoder.defaultAbiCoder()
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }), (n) => {
        expect(toHex(abiWord(n))).toBe(coder.encode(['uint256'], [n]))
      }),
    )
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 255n), max: -1n }), (n) => {
        expect(toHex(abiWord(n))).toBe(coder.encode(['int256'], [n]))
      }),
    )
    for (const bad of [2n ** 256n, -(2n ** 255n) - 1n, 1 as unknown as bigint]) {
      expect(() => abiWord(bad)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    }
    expect(toHex(leftPad32(new Uint8Array([1, 2])))).toBe(`0x${'00'.repeat(30)}0102`)
    expect(() => leftPad32(new Uint8Array(33))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })

  it("grantId is keccak256(abi.encode(...)) of the AccessController's seven fields", () => {
    const word = fc.uint8Array({ minLength: 32, maxLength: 32 })
    const addr = fc.uint8Array({ minLength: 20, maxLength: 20 }).map(checksumAddress)
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 2n ** 64n }),
        addr,
        word,
        addr,
        word,
        word,
        fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }),
        (chainId, accessController, capsuleId, executor, ephemeralKey, measurement, runIndex) => {
          const expected = keccak256(
            AbiCoder.defaultAbiCoder().encode(
              ['uint256', 'address', 'bytes32', 'address', 'bytes32', 'bytes32', 'uint256'],
              [chainId, accessController, capsuleId, executor, ephemeralKey, measurement, runIndex],
            ),
          )
          const params = {
            chainId,
            accessController,
            capsuleId,
            executor,
            ephemeralKey,
            measurement,
            runIndex,
          }
          expect(toHex(grantId(params))).toBe(expected)
          const asBytes = {
            ...params,
            accessController: addressToBytes(accessController),
            executor: toHex(addressToBytes(executor)),
            capsuleId: toHex(capsuleId),
          }
          expect(toHex(grantId(asBytes))).toBe(expected)
        },
      ),
      { numRuns: 50 },
    )
  })

  it('grantId refuses fields of the wrong length or range', () => {
    const ok = {
      chainId: 1n,
      accessController: `0x${'11'.repeat(20)}`,
      capsuleId: new Uint8Array(32),
      executor: new Uint8Array(20),
      ephemeralKey: new Uint8Array(32),
      measurement: new Uint8Array(32),
      runIndex: 0,
    }
    expect(grantId(ok)).toHaveLength(32)
    for (const bad of [
      { capsuleId: new Uint8Array(31) },
      { executor: new Uint8Array(32) },
      { accessController: '0x1234' },
      { runIndex: -1 },
      { chainId: 2n ** 256n },
      { measurement: '0xzz' },
    ]) {
      expect(() => grantId({ ...ok, ...bad })).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
      )
    }
  })
})

describe('the receiver text form (one reader for the SDK and the CLIs)', () => {
  const hex = 'cd'.repeat(32)
  const peerId = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
  it('reads the key with or without 0x, and an optional @peer id', () => {
    const publicKey = new Uint8Array(32).fill(0xcd)
    expect(parseReceiver(hex)).toEqual({ publicKey })
    expect(parseReceiver(`0x${hex}@${peerId}`)).toEqual({ publicKey, peerId })
    const given = { publicKey }
    expect(parseReceiver(given)).toEqual(given)
    expect(parseReceiver({ publicKey, peerId })).toEqual({ publicKey, peerId })
  })
  it.each([
    ['a 31-byte key', { publicKey: new Uint8Array(31) }],
    ['a key that is not bytes', { publicKey: 'cd'.repeat(32) }],
    ['a peer id of another alphabet', { publicKey: new Uint8Array(32), peerId: '0OIl' + peerId }],
    ['no object', null],
  ])('refuses a receiver object with %s (INVALID_ARGUMENT)', (_what, given) => {
    expect(() => parseReceiver(given as never)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })
  it.each([
    'zz',
    `${hex}@`,
    `${hex}@${peerId}@${peerId}`,
    `0x${hex}0`,
    `0X${hex}`,
    `${hex.slice(2)}@${peerId}`,
    `${hex}@0OIl${peerId.slice(4)}`,
    '',
  ])('refuses %j with INVALID_ARGUMENT', (text) => {
    expect(() => parseReceiver(text)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })
})
