import { privateKeySigner } from '@digicap/capsule-core'
import { Transaction, Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import { localSigner } from '../src/index.ts'

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

  it('signs transactions as ethers’ Wallet does (every SDK call that sends takes it)', async () => {
    const unsigned = Transaction.from({
      type: 2,
      chainId: 31337,
      nonce: 1,
      gasLimit: 50_000n,
      maxFeePerGas: 2n * 10n ** 9n,
      maxPriorityFeePerGas: 1n,
      to: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
      data: '0x1234',
    })
    expect(await localSigner(KEY).signTransaction?.(unsigned.unsignedSerialized as never)).toBe(
      await new Wallet(KEY).signTransaction(unsigned),
    )
  })

  it('keeps its own copy of the key: zeroing the caller’s bytes changes nothing', async () => {
    const bytes = Uint8Array.from(Buffer.from(KEY.slice(2), 'hex'))
    const s = localSigner(bytes)
    bytes.fill(0)
    expect(await s.signTypedData(TYPED as never)).toBe(
      await privateKeySigner(KEY).signTypedData(TYPED as never),
    )
    const unsigned = Transaction.from({ chainId: 1, nonce: 0, gasLimit: 21_000n, gasPrice: 1n })
    expect(await s.signTransaction?.(unsigned.unsignedSerialized as never)).toBe(
      await new Wallet(KEY).signTransaction(unsigned),
    )
  })

  it('shows no key: frozen, and its JSON holds the address only', () => {
    const s = localSigner(KEY)
    expect(Object.isFrozen(s)).toBe(true)
    expect(JSON.stringify(s)).not.toContain(KEY.slice(4, 20))
    expect(Object.keys(s).sort()).toEqual(['address', 'signTransaction', 'signTypedData'])
  })
})
