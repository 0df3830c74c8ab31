/**
 * The executor node's account is any `DigicapSigner`: on a real anvil, a signer whose key is
 * not in this process (anvil signs for its own account) registers; one that cannot sign
 * transactions reads the chain but refuses to send, with a typed error and nothing sent; the
 * account is given exactly once.
 */
import { randomBytes } from 'node:crypto'
import { type DigicapAddresses, deployDigicap } from '@digicap/contracts'
import { type Anvil, nodeAccountSigner, startAnvil } from '@digicap/contracts/testing'
import { parseEther, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type OpenExecutorNodeParameters, openExecutorNode } from '../src/node/index.ts'

const bytes = () => new Uint8Array(randomBytes(32))
let anvil: Anvil
let addresses: DigicapAddresses

beforeAll(async () => {
  anvil = await startAnvil({ accounts: 3 })
  addresses = await deployDigicap(anvil.signers[0] as Wallet, { minStake: parseEther('0.01') })
}, 120_000)
afterAll(() => anvil?.stop())

const base = (): Omit<OpenExecutorNodeParameters, 'signer' | 'accountKey'> => ({
  rpcUrl: anvil.rpcUrl,
  chainId: Number(anvil.chainId),
  contracts: addresses,
  libp2pSeed: bytes(),
  start: false,
})

describe('executor node account', () => {
  it('a signer whose key is not here (anvil’s RPC signs) registers as its account', async () => {
    const signer = nodeAccountSigner(anvil.rpcUrl, anvil.accounts[1] as string)
    const en = await openExecutorNode({ ...base(), signer })
    try {
      expect(en.address).toBe(anvil.accounts[1])
      const r = await en.register({ stake: parseEther('0.01') })
      const receipt = await anvil.provider.getTransactionReceipt(r.transaction)
      expect(receipt?.from).toBe(anvil.accounts[1])
      expect(await en.chain.isRegistered(signer.address)).toBe(true)
    } finally {
      await en.stop()
    }
  })

  it('a signer without signTransaction reads the chain, and refuses to send with EXECUTOR_STATE', async () => {
    const { address, signTypedData } = nodeAccountSigner(anvil.rpcUrl, anvil.accounts[2] as string)
    const en = await openExecutorNode({ ...base(), signer: { address, signTypedData } })
    try {
      const nonce = await anvil.provider.getTransactionCount(address)
      const err = await en.register({ stake: parseEther('0.01') }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'EXECUTOR_STATE', details: { address } })
      await expect(
        en.chain.requestAccess({
          capsuleId: bytes(),
          ephemeralKey: bytes(),
          measurement: bytes(),
          jobParams: new Uint8Array(0),
          fee: 0n,
        }),
      ).rejects.toMatchObject({ code: 'EXECUTOR_STATE' })
      expect(await anvil.provider.getTransactionCount(address)).toBe(nonce)
      expect(await en.chain.isRegistered(address)).toBe(false)
    } finally {
      await en.stop()
    }
  })

  it('neither or both of signer and accountKey: INVALID_ARGUMENT before anything starts', async () => {
    const signer = nodeAccountSigner(anvil.rpcUrl, anvil.accounts[1] as string)
    await expect(openExecutorNode(base())).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(
      openExecutorNode({ ...base(), signer, accountKey: bytes() }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})
