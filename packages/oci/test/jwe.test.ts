/**
 * The JWE layer on its own: the Concat KDF against RFC 7518 Appendix C, round trips for every
 * key kind ocicrypt writes (RSA, P-256, P-384, P-521; one and several recipients), the
 * serialization shape go-jose writes, and every bad input as a typed error.
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  decryptJwe,
  encryptJwe,
  jwePrivateKey,
  jwePublicKey,
  OciFormatError,
  OciIntegrityError,
  OciKeyError,
  OciUnsupportedError,
} from '../src/index.ts'
import { concatKdf } from '../src/jwe/concat-kdf.ts'

const te = new TextEncoder()
const plaintext = te.encode('{"symkey":"x","digest":"sha256:00","cipheroptions":{}}')

function pair(kind: 'rsa' | 'P-256' | 'P-384' | 'P-521') {
  const k =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: kind })
  return {
    pub: jwePublicKey(k.publicKey.export({ type: 'spki', format: 'pem' }).toString()),
    priv: jwePrivateKey(k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
  }
}

const b64urlJson = (s: string) => JSON.parse(Buffer.from(s, 'base64url').toString())

describe('Concat KDF (RFC 7518 Appendix C)', () => {
  it('derives the appendix key from Alice’s and Bob’s keys', () => {
    const alice = createPrivateKey({
      format: 'jwk',
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: 'gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0',
        y: 'SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps',
        d: '0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo',
      },
    })
    const bob = createPublicKey({
      format: 'jwk',
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: 'weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ',
        y: 'e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck',
      },
    })
    const z = diffieHellman({ privateKey: alice, publicKey: bob })
    const key = concatKdf(z, 'A128GCM', 16, te.encode('Alice'), te.encode('Bob'))
    expect(Buffer.from(key).toString('base64url')).toBe('VqqN6vgjbSBcIijNcacQGg')
  })
})

describe('JWE as ocicrypt writes it', () => {
  for (const kind of ['rsa', 'P-256', 'P-384', 'P-521'] as const) {
    it(`round-trips to a ${kind} key, flattened, with alg in the protected header`, () => {
      const { pub, priv } = pair(kind)
      const jwe = JSON.parse(encryptJwe(plaintext, [pub]))
      expect(Object.keys(jwe)).toEqual(['protected', 'encrypted_key', 'iv', 'ciphertext', 'tag'])
      const header = b64urlJson(jwe.protected)
      expect(header.enc).toBe('A256GCM')
      expect(header.alg).toBe(kind === 'rsa' ? 'RSA-OAEP' : 'ECDH-ES+A256KW')
      if (kind !== 'rsa') expect(header.epk.crv).toBe(kind)
      expect(decryptJwe(JSON.stringify(jwe), [priv])).toEqual(plaintext)
    })
  }

  it('uses the general syntax for several keys, and each key opens it', () => {
    const a = pair('rsa')
    const b = pair('P-256')
    const jwe = JSON.parse(encryptJwe(plaintext, [a.pub, b.pub]))
    expect(jwe.recipients).toHaveLength(2)
    expect(b64urlJson(jwe.protected)).toEqual({ enc: 'A256GCM' })
    expect(jwe.recipients[1].header.alg).toBe('ECDH-ES+A256KW')
    expect(decryptJwe(JSON.stringify(jwe), [a.priv])).toEqual(plaintext)
    expect(decryptJwe(JSON.stringify(jwe), [b.priv])).toEqual(plaintext)
    expect(() => decryptJwe(JSON.stringify(jwe), [pair('rsa').priv, pair('P-256').priv])).toThrow(
      OciKeyError,
    )
  })

  it('refuses a wrong key, a flipped tag, zip, crit, duplicate header names and bad JSON', () => {
    const { pub, priv } = pair('P-256')
    const text = encryptJwe(plaintext, [pub])
    const jwe = JSON.parse(text)
    expect(() => decryptJwe(text, [pair('P-256').priv])).toThrow(OciKeyError)
    expect(() => decryptJwe(text, [pair('P-384').priv])).toThrow(OciKeyError)
    const tag = Buffer.from(jwe.tag, 'base64url')
    tag[0] = (tag[0] ?? 0) ^ 1
    expect(() =>
      decryptJwe(JSON.stringify({ ...jwe, tag: tag.toString('base64url') }), [priv]),
    ).toThrow(OciIntegrityError)
    const withHeader = (h: Record<string, unknown>) =>
      JSON.stringify({
        ...jwe,
        protected: Buffer.from(JSON.stringify({ ...b64urlJson(jwe.protected), ...h })).toString(
          'base64url',
        ),
      })
    expect(() => decryptJwe(withHeader({ zip: 'DEF' }), [priv])).toThrow(OciUnsupportedError)
    expect(() => decryptJwe(withHeader({ crit: ['x'] }), [priv])).toThrow(OciUnsupportedError)
    expect(() => decryptJwe(withHeader({ alg: 'dir' }), [priv])).toThrow(OciUnsupportedError)
    expect(() =>
      decryptJwe(JSON.stringify({ ...jwe, header: { enc: 'A256GCM' } }), [priv]),
    ).toThrow(OciFormatError)
    expect(() => decryptJwe('{"protected":', [priv])).toThrow(OciFormatError)
    expect(() => decryptJwe(JSON.stringify({ ...jwe, iv: '***' }), [priv])).toThrow(OciFormatError)
    // an epk that is not on the curve
    const h = b64urlJson(jwe.protected)
    const bad = withHeader({ epk: { ...h.epk, y: h.epk.x } })
    expect(() => decryptJwe(bad, [priv])).toThrow(OciFormatError)
  })

  it('refuses keys of other kinds', () => {
    const ed = generateKeyPairSync('ed25519')
    expect(() =>
      jwePublicKey(ed.publicKey.export({ type: 'spki', format: 'pem' }).toString()),
    ).toThrow(OciUnsupportedError)
    expect(() => jwePublicKey('not a key')).toThrow(OciFormatError)
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
    // a private key where a public key is expected
    expect(() =>
      jwePublicKey(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
    ).toThrow(OciFormatError)
    // DER forms parse too (PKCS#1 RSA, SEC1 EC, SPKI)
    expect(
      jwePrivateKey(rsa.privateKey.export({ type: 'pkcs1', format: 'der' })).asymmetricKeyType,
    ).toBe('rsa')
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    expect(
      jwePrivateKey(ec.privateKey.export({ type: 'sec1', format: 'der' })).asymmetricKeyType,
    ).toBe('ec')
    expect(
      jwePublicKey(ec.publicKey.export({ type: 'spki', format: 'der' })).asymmetricKeyType,
    ).toBe('ec')
  })
})
