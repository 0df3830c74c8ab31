/**
 * The shared sealer compliance suite: every `Sealer` implementation runs it and must
 * behave the same (round trip, randomized wraps, wrap from the public key alone, typed
 * errors for foreign, tampered and truncated wraps, concurrency).
 */
import { randomBytes } from 'node:crypto'
import { DigicapError } from '@digicap/capsule-core'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { rsaPublicKey, type Sealer, wrapWithPublicKey } from '../src/index.ts'

export interface ComplianceTarget {
  /** The sealer under test. */
  sealer: Sealer
  /** A second sealer of the same kind with a different key. */
  other: Sealer
}

export async function expectCode(promise: Promise<unknown>, code: string): Promise<DigicapError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err, `expected a ${code} error`).toBeInstanceOf(DigicapError)
  expect((err as DigicapError).code).toBe(code)
  return err as DigicapError
}

export function sealerComplianceSuite(
  name: string,
  factory: () => Promise<ComplianceTarget>,
  options: { propertyRuns?: number } = {},
): void {
  describe(`Sealer compliance: ${name}`, () => {
    let sealer: Sealer
    let other: Sealer
    beforeAll(async () => {
      ;({ sealer, other } = await factory())
    })

    it('publishes a stable RSA-2048 public key whose keyId is the SHA-256 of its SPKI', async () => {
      const a = await sealer.publicKey()
      const b = await sealer.publicKey()
      expect(a.keyId).toBe(b.keyId)
      expect(a.keyId).toBe(bytesToHex(sha256(a.spkiDer)))
      expect(a.pem).toMatch(/^-----BEGIN PUBLIC KEY-----/)
      expect((await other.publicKey()).keyId).not.toBe(a.keyId)
    })

    it('round-trips data keys of 1, 32 and 190 bytes', async () => {
      for (const length of [1, 32, 190]) {
        const key = randomBytes(length)
        const wrapped = await sealer.wrap(key)
        expect(wrapped.scheme).toBe((await sealer.publicKey()).scheme)
        expect(wrapped.ciphertext.length).toBe(256)
        expect(Buffer.from(await sealer.unwrap(wrapped)).equals(key)).toBe(true)
      }
    })

    it('keeps a trailing newline or zero byte in the data key', async () => {
      const key = new Uint8Array([0x0a, 0, 0x0a, 0x0d, 0x0a])
      expect(await sealer.unwrap(await sealer.wrap(key))).toEqual(key)
    })

    it('refuses empty and over-long data keys with INVALID_ARGUMENT', async () => {
      await expectCode(sealer.wrap(new Uint8Array(0)), 'INVALID_ARGUMENT')
      await expectCode(sealer.wrap(new Uint8Array(191)), 'INVALID_ARGUMENT')
      await expectCode(sealer.wrap('key' as unknown as Uint8Array), 'INVALID_ARGUMENT')
    })

    it('randomizes wraps: two wraps of one key differ and both unwrap', async () => {
      const key = randomBytes(32)
      const [a, b] = [await sealer.wrap(key), await sealer.wrap(key)]
      expect(Buffer.from(a.ciphertext).equals(Buffer.from(b.ciphertext))).toBe(false)
      expect(await sealer.unwrap(a)).toEqual(new Uint8Array(key))
      expect(await sealer.unwrap(b)).toEqual(new Uint8Array(key))
    })

    it('unwraps a key wrapped elsewhere from the PEM public key alone', async () => {
      const pub = await sealer.publicKey()
      const laptop = rsaPublicKey(pub.scheme, pub.pem)
      expect(laptop.keyId).toBe(pub.keyId)
      const key = randomBytes(32)
      expect(await sealer.unwrap(wrapWithPublicKey(laptop, key))).toEqual(new Uint8Array(key))
    })

    it('fails with UNWRAP for a tampered ciphertext', async () => {
      const wrapped = await sealer.wrap(randomBytes(32))
      for (const index of [0, 100, 255]) {
        const ciphertext = Uint8Array.from(wrapped.ciphertext)
        ciphertext[index]! ^= 0x01
        await expectCode(sealer.unwrap({ ...wrapped, ciphertext }), 'UNWRAP')
      }
    })

    it('fails with UNWRAP for truncated, extended and empty ciphertexts', async () => {
      const wrapped = await sealer.wrap(randomBytes(32))
      for (const ciphertext of [
        wrapped.ciphertext.subarray(0, 255),
        new Uint8Array([...wrapped.ciphertext, 0]),
        new Uint8Array(0),
      ]) {
        await expectCode(sealer.unwrap({ ...wrapped, ciphertext }), 'UNWRAP')
      }
    })

    it('fails with UNWRAP for another key id, another scheme, or another sealer', async () => {
      const wrapped = await sealer.wrap(randomBytes(32))
      await expectCode(sealer.unwrap({ ...wrapped, keyId: '00'.repeat(32) }), 'UNWRAP')
      await expectCode(sealer.unwrap({ ...wrapped, scheme: 'hpke-x25519-recovery' }), 'UNWRAP')
      await expectCode(sealer.unwrap(await other.wrap(randomBytes(32))), 'UNWRAP')
      // Another key's ciphertext relabelled with this key id: the private key rejects it.
      const foreign = await other.wrap(randomBytes(32))
      await expectCode(
        sealer.unwrap({ ...foreign, keyId: wrapped.keyId, scheme: wrapped.scheme }),
        'UNWRAP',
      )
    })

    it('serves concurrent unwraps correctly', async () => {
      const keys = Array.from({ length: 8 }, () => randomBytes(32))
      const wrapped = await Promise.all(keys.map((k) => sealer.wrap(k)))
      const plain = await Promise.all(wrapped.map((w) => sealer.unwrap(w)))
      expect(plain.map((p) => Buffer.from(p).toString('hex'))).toEqual(
        keys.map((k) => k.toString('hex')),
      )
    })

    it('round-trips arbitrary keys (property)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 190 }), async (key) => {
          expect(await sealer.unwrap(await sealer.wrap(key))).toEqual(key)
        }),
        { numRuns: options.propertyRuns ?? 20 },
      )
    })

    it('describes itself without secrets', async () => {
      const d = await sealer.describe()
      const pub = await sealer.publicKey()
      expect(d.keyId).toBe(pub.keyId)
      expect(d.scheme).toBe(pub.scheme)
      expect(['tpm2', 'software']).toContain(d.kind)
      expect(JSON.stringify(d)).not.toMatch(/PRIVATE KEY/)
    })
  })
}
