import { privateKeySigner } from '@digicap/capsule-core'
import { Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import { localSigner } from '../src/index.ts'
import { localKeyOf } from '../src/signer/signer.ts'

const KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80' // anvil account 0
const TYPED = {
  domain: { name: 'T', version: '1', chainId: 1n },
  types: { M: [{ name: 'x', type: 'uint256' }] },
  primaryType: 'M',
  message: { x: 7n },
} as const

describe('localSigner', () => {
  it('is a DigicapSigner: the address ethers derives, the signature capsule-core makes', async () => {
    const s = localSigner(KEY)
    expect(s.address).toBe(new Wallet(KEY).address)
    const sig = await s.signTypedData(TYPED as never)
    expect(sig).toBe(await privateKeySigner(KEY).signTypedData(TYPED as never))
    expect(sig).toBe(
      await new Wallet(KEY).signTypedData(TYPED.domain, { M: [...TYPED.types.M] }, TYPED.message),
    )
  })

  it.each([
    ['too short', new Uint8Array(31)],
    ['hex too short', '0x1234'],
    ['not hex', `0x${'zz'.repeat(32)}`],
    ['without 0x', KEY.slice(2)],
    ['zero', new Uint8Array(32)],
    ['above the curve order', `0x${'ff'.repeat(32)}`],
    ['a number', 5],
  ])('refuses a key that is %s with INVALID_ARGUMENT', (_, key) => {
    expect(() => localSigner(key as `0x${string}`)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })

  it('keeps its own copy of the key: zeroing the caller’s bytes changes nothing', async () => {
    const bytes = Uint8Array.from(Buffer.from(KEY.slice(2), 'hex'))
    const s = localSigner(bytes)
    bytes.fill(0)
    expect(await s.signTypedData(TYPED as never)).toBe(
      await privateKeySigner(KEY).signTypedData(TYPED as never),
    )
    expect(Buffer.from(localKeyOf(s) as Uint8Array).toString('hex')).toBe(KEY.slice(2))
  })

  it('only the signer object itself carries the key: a copy of its fields or another signer does not', () => {
    const s = localSigner(KEY)
    expect(localKeyOf({ ...s })).toBeUndefined()
    expect(localKeyOf(privateKeySigner(KEY))).toBeUndefined()
    expect(Object.isFrozen(s)).toBe(true)
    expect(JSON.stringify(s)).not.toContain(KEY.slice(4, 20))
  })
})
