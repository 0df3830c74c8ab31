/**
 * HPKE helpers. RFC 9180 has no vector for our exact suite (X25519 / HKDF-SHA256 /
 * AES-256-GCM), so: an independent RFC 9180 base-mode implementation below (noble X25519 +
 * HKDF, Node AES-GCM) is first checked against the published Appendix A.1 vector
 * (same KEM and KDF, AES-128-GCM), then used to open what `hpkeSeal` produces and to seal
 * what `hpkeOpen` must open, with the A.1 key pairs.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto'
import { x25519 } from '@noble/curves/ed25519.js'
import { expand, extract } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { describe, expect, it } from 'vitest'
import {
  decodeHpkeSealed,
  encodeHpkeSealed,
  generateX25519KeyPair,
  HPKE_OVERHEAD,
  hpkeOpen,
  hpkeSeal,
  x25519PublicKey,
} from '../src/index.ts'

const h = (s: string) => new Uint8Array(Buffer.from(s, 'hex'))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const te = new TextEncoder()
const cat = (...p: Uint8Array[]) => new Uint8Array(Buffer.concat(p))
const i2osp = (n: number, len: number) => {
  const out = new Uint8Array(len)
  for (let i = len - 1; i >= 0; i--, n >>= 8) out[i] = n & 0xff
  return out
}

// RFC 9180 Appendix A.1.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode).
const A1 = {
  info: h('4f6465206f6e2061204772656369616e2055726e'),
  skEm: h('52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736'),
  pkEm: h('37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431'),
  skRm: h('4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8'),
  pkRm: h('3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d'),
  sharedSecret: 'fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc',
  key: '4531685d41d65f03dc48f6b8302c05b0',
  baseNonce: '56d890e5accaaf011cff4b7d',
  pt: h('4265617574792069732074727574682c20747275746820626561757479'),
  aad0: h('436f756e742d30'),
  ct0: 'f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a',
}

/** RFC 9180 base mode, written from the RFC text, for one AEAD (0x0001 AES-128-GCM or 0x0002 AES-256-GCM). */
function reference(aeadId: 1 | 2) {
  const nk = aeadId === 1 ? 16 : 32
  const kemSuite = cat(te.encode('KEM'), i2osp(0x20, 2))
  const suite = cat(te.encode('HPKE'), i2osp(0x20, 2), i2osp(1, 2), i2osp(aeadId, 2))
  const lExtract = (id: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array) =>
    extract(sha256, cat(te.encode('HPKE-v1'), id, te.encode(label), ikm), salt)
  const lExpand = (id: Uint8Array, prk: Uint8Array, label: string, info: Uint8Array, len: number) =>
    expand(sha256, prk, cat(i2osp(len, 2), te.encode('HPKE-v1'), id, te.encode(label), info), len)
  const empty = new Uint8Array(0)
  function schedule(dh: Uint8Array, enc: Uint8Array, pkR: Uint8Array, info: Uint8Array) {
    const eae = lExtract(kemSuite, empty, 'eae_prk', dh)
    const sharedSecret = lExpand(kemSuite, eae, 'shared_secret', cat(enc, pkR), 32)
    const ctx = cat(
      new Uint8Array([0]),
      lExtract(suite, empty, 'psk_id_hash', empty),
      lExtract(suite, empty, 'info_hash', info),
    )
    const secret = lExtract(suite, sharedSecret, 'secret', empty)
    return {
      sharedSecret,
      key: lExpand(suite, secret, 'key', ctx, nk),
      nonce: lExpand(suite, secret, 'base_nonce', ctx, 12),
    }
  }
  const alg = aeadId === 1 ? 'aes-128-gcm' : 'aes-256-gcm'
  return {
    seal(skE: Uint8Array, pkR: Uint8Array, info: Uint8Array, aad: Uint8Array, pt: Uint8Array) {
      const enc = x25519.getPublicKey(skE)
      const s = schedule(x25519.getSharedSecret(skE, pkR), enc, pkR, info)
      const c = createCipheriv(alg, s.key, s.nonce)
      c.setAAD(aad)
      return { ...s, enc, ciphertext: cat(c.update(pt), c.final(), c.getAuthTag()) }
    },
    open(skR: Uint8Array, enc: Uint8Array, info: Uint8Array, aad: Uint8Array, ct: Uint8Array) {
      const s = schedule(x25519.getSharedSecret(skR, enc), enc, x25519.getPublicKey(skR), info)
      const d = createDecipheriv(alg, s.key, s.nonce)
      d.setAAD(aad)
      d.setAuthTag(ct.subarray(ct.length - 16))
      return cat(d.update(ct.subarray(0, ct.length - 16)), d.final())
    },
  }
}

describe('reference RFC 9180 implementation', () => {
  it('reproduces Appendix A.1.1 (shared secret, key, nonce, first ciphertext)', () => {
    const r = reference(1).seal(A1.skEm, A1.pkRm, A1.info, A1.aad0, A1.pt)
    expect(hex(r.enc)).toBe(hex(A1.pkEm))
    expect(hex(r.sharedSecret)).toBe(A1.sharedSecret)
    expect(hex(r.key)).toBe(A1.key)
    expect(hex(r.nonce)).toBe(A1.baseNonce)
    expect(hex(r.ciphertext)).toBe(A1.ct0)
    expect(hex(reference(1).open(A1.skRm, A1.pkEm, A1.info, A1.aad0, h(A1.ct0)))).toBe(hex(A1.pt))
  })
})

describe('hpkeSeal / hpkeOpen (X25519, HKDF-SHA256, AES-256-GCM)', () => {
  const aad = te.encode('grant-42')
  const pt = te.encode('a 32-byte data key would go here')

  it('what hpkeSeal makes, the reference opens (A.1 recipient key, empty info)', async () => {
    const sealed = await hpkeSeal(A1.pkRm, pt, aad)
    expect(sealed.enc.length).toBe(32)
    expect(sealed.ciphertext.length).toBe(pt.length + 16)
    expect(
      hex(reference(2).open(A1.skRm, sealed.enc, new Uint8Array(0), aad, sealed.ciphertext)),
    ).toBe(hex(pt))
  })

  it('what the reference makes (A.1 ephemeral key), hpkeOpen opens: a fixed known answer', async () => {
    const r = reference(2).seal(A1.skEm, A1.pkRm, new Uint8Array(0), aad, pt)
    expect(hex(r.enc)).toBe(hex(A1.pkEm))
    // The shared secret depends only on the KEM, so it equals the published A.1 value.
    expect(hex(r.sharedSecret)).toBe(A1.sharedSecret)
    expect(hex(await hpkeOpen(A1.skRm, { enc: r.enc, ciphertext: r.ciphertext }, aad))).toBe(
      hex(pt),
    )
  })

  it('derives the published A.1 public keys from their private keys', () => {
    expect(hex(x25519PublicKey(A1.skRm))).toBe(hex(A1.pkRm))
    expect(hex(x25519PublicKey(A1.skEm))).toBe(hex(A1.pkEm))
  })

  it('round-trips with fresh keys and an empty AAD', async () => {
    const kp = generateX25519KeyPair()
    expect(hex(x25519PublicKey(kp.privateKey))).toBe(hex(kp.publicKey))
    const sealed = await hpkeSeal(kp.publicKey, pt)
    const wire = encodeHpkeSealed(sealed)
    expect(wire.length).toBe(pt.length + HPKE_OVERHEAD)
    expect(hex(await hpkeOpen(kp.privateKey, decodeHpkeSealed(wire)))).toBe(hex(pt))
  })

  it('fails with HPKE for a wrong key, wrong AAD, or altered ciphertext', async () => {
    const kp = generateX25519KeyPair()
    const sealed = await hpkeSeal(kp.publicKey, pt, aad)
    const other = generateX25519KeyPair()
    await expect(hpkeOpen(other.privateKey, sealed, aad)).rejects.toMatchObject({ code: 'HPKE' })
    await expect(hpkeOpen(kp.privateKey, sealed, te.encode('grant-43'))).rejects.toMatchObject({
      code: 'HPKE',
    })
    const bad = { enc: sealed.enc, ciphertext: sealed.ciphertext.slice() }
    bad.ciphertext[0] = (bad.ciphertext[0] as number) ^ 1
    await expect(hpkeOpen(kp.privateKey, bad, aad)).rejects.toMatchObject({ code: 'HPKE' })
    await expect(
      hpkeOpen(kp.privateKey, { enc: sealed.enc, ciphertext: new Uint8Array(15) }, aad),
    ).rejects.toMatchObject({ code: 'HPKE' })
  })

  it('rejects inputs of the wrong type or length with INVALID_ARGUMENT', async () => {
    await expect(hpkeSeal(new Uint8Array(31), pt)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await expect(hpkeSeal('x' as unknown as Uint8Array, pt)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await expect(
      hpkeOpen(new Uint8Array(32), { enc: new Uint8Array(31), ciphertext: new Uint8Array(20) }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    expect(() => x25519PublicKey(new Uint8Array(33))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(() => decodeHpkeSealed(new Uint8Array(HPKE_OVERHEAD - 1))).toThrow(
      expect.objectContaining({ code: 'HPKE' }),
    )
  })

  it('never puts key bytes in an error message', async () => {
    const kp = generateX25519KeyPair()
    const sealed = await hpkeSeal(kp.publicKey, pt, aad)
    const err = await hpkeOpen(generateX25519KeyPair().privateKey, sealed, aad).catch(
      (e: Error) => e,
    )
    expect(String((err as Error).message)).not.toContain(hex(kp.privateKey))
    expect(String((err as Error).message)).not.toContain(hex(pt))
  })
})
