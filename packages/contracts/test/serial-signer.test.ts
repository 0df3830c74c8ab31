/**
 * `serialSigner`: concurrent sends from one account on a real anvil. A bare `Wallet` gives two
 * concurrent sends the same pending nonce (one is refused); through `serialSigner` every send
 * lands, in order, and a send that fails before broadcast leaves no nonce gap.
 */
import { parseEther, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Anvil, startAnvil } from '../src/anvil.ts'
import { serialSigner } from '../src/serial-signer.ts'

let anvil: Anvil
beforeAll(async () => {
  anvil = await startAnvil({ accounts: 4 })
})
afterAll(() => anvil?.stop())

const SENDS = 6
const pay = (signer: Wallet | ReturnType<typeof serialSigner>, i: number) =>
  signer.sendTransaction({ to: anvil.accounts[3] as string, value: BigInt(i + 1) })

describe('serialSigner', () => {
  it('a bare Wallet: concurrent sends collide on one nonce (why the verifier needs it)', async () => {
    const wallet = anvil.signers[0] as Wallet
    const sent = await Promise.allSettled(Array.from({ length: SENDS }, (_, i) => pay(wallet, i)))
    expect(sent.filter((s) => s.status === 'rejected').length).toBeGreaterThan(0)
  })

  it('concurrent sends from one account all land, with consecutive nonces in call order', async () => {
    const account = anvil.signers[1] as Wallet
    const start = await anvil.provider.getTransactionCount(account.address, 'pending')
    const signer = serialSigner(account)
    const sent = await Promise.all(Array.from({ length: SENDS }, (_, i) => pay(signer, i)))
    expect(sent.map((tx) => tx.nonce)).toEqual(Array.from({ length: SENDS }, (_, i) => start + i))
    const receipts = await Promise.all(sent.map((tx) => tx.wait()))
    expect(receipts.every((r) => r?.status === 1)).toBe(true)
    expect(sent.map((tx) => tx.value)).toEqual(
      Array.from({ length: SENDS }, (_, i) => BigInt(i + 1)),
    )
  })

  it('a send refused before broadcast leaves no gap: the next send takes the next nonce', async () => {
    const account = anvil.signers[2] as Wallet
    const signer = serialSigner(account)
    const start = await anvil.provider.getTransactionCount(account.address, 'pending')
    const [ok, tooMuch, after] = await Promise.allSettled([
      pay(signer, 0),
      signer.sendTransaction({ to: anvil.accounts[3] as string, value: parseEther('1000000') }),
      pay(signer, 1),
    ])
    expect(tooMuch.status).toBe('rejected')
    expect(ok.status === 'fulfilled' && ok.value.nonce).toBe(start)
    expect(after.status === 'fulfilled' && after.value.nonce).toBe(start + 1)
    if (after.status === 'fulfilled') expect((await after.value.wait())?.status).toBe(1)
  })

  it('signs and answers as its account', async () => {
    const account = anvil.signers[0] as Wallet
    const signer = serialSigner(account)
    expect(await signer.getAddress()).toBe(account.address)
    expect(await signer.signMessage('hi')).toBe(await account.signMessage('hi'))
    expect(signer.provider).toBe(account.provider)
  })
})
