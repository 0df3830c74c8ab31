import { Signature, SigningKey, Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import { privateKeySigner } from '../src/index.ts'

const KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80' // anvil account 0

describe('privateKeySigner', () => {
  it('has the address ethers derives, and its signature recovers to it', async () => {
    const s = privateKeySigner(KEY)
    expect(s.address).toBe(new Wallet(KEY).address)
    const digest = new Uint8Array(32).fill(7)
    const sig = await s.signDigest(digest)
    expect(sig.length).toBe(65)
    expect(
      SigningKey.recoverPublicKey(
        digest,
        Signature.from(Buffer.from(sig).toString('hex').replace(/^/, '0x')),
      ),
    ).toBe(new SigningKey(KEY).publicKey)
    // same bytes as ethers' own signature (RFC 6979 deterministic)
    expect(`0x${Buffer.from(sig).toString('hex')}`).toBe(
      new SigningKey(KEY).sign(digest).serialized,
    )
  })

  it.each([
    ['too short', new Uint8Array(31)],
    ['hex too short', '0x1234'],
    ['not hex', `0x${'zz'.repeat(32)}`],
    ['zero key', new Uint8Array(32)],
    ['above the curve order', `0x${'ff'.repeat(32)}`],
    ['a number', 5 as unknown as string],
  ])('refuses a key that is %s with INVALID_ARGUMENT', (_, key) => {
    expect(() => privateKeySigner(key as string)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })

  it('refuses a digest that is not 32 bytes', async () => {
    await expect(privateKeySigner(KEY).signDigest(new Uint8Array(31))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
  })

  it('copies the key: zeroing the caller’s buffer does not change the signer', async () => {
    const bytes = Uint8Array.from(Buffer.from(KEY.slice(2), 'hex'))
    const s = privateKeySigner(bytes)
    bytes.fill(0)
    const digest = new Uint8Array(32).fill(1)
    expect(`0x${Buffer.from(await s.signDigest(digest)).toString('hex')}`).toBe(
      new SigningKey(KEY).sign(digest).serialized,
    )
  })
})
