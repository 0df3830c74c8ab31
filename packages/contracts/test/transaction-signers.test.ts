/**
 * Transactions through any `DigicapSigner` (`digicapEthersSigner`): a key in this process
 * (`privateKeyAccount`) and a signer whose key is not here (anvil signs for its own account,
 * `nodeAccountSigner`) both send, and the chain sees the signer's account as the sender.
 */
import {
  recoverTypedDataSigner,
  signTypedDataWith,
  type TypedData,
  toHex,
} from '@digicap/capsule-core'
import { Transaction, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Anvil, startAnvil } from '../src/anvil.ts'
import { digicapEthersSigner } from '../src/ethers-signer.ts'
import { nodeAccountSigner } from '../src/node-account-signer.ts'
import { privateKeyAccount } from '../src/private-key-account.ts'

let anvil: Anvil
beforeAll(async () => {
  anvil = await startAnvil({ accounts: 4 })
})
afterAll(() => anvil?.stop())

const typedData = (chainId: number): TypedData => ({
  domain: {
    name: 'Test',
    version: '1',
    chainId,
    verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
  },
  types: {
    Ping: [
      { name: 'who', type: 'address' },
      { name: 'n', type: 'uint256' },
      { name: 'h', type: 'bytes32' },
    ],
  },
  primaryType: 'Ping',
  message: {
    who: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    n: 2n ** 200n,
    h: toHex(new Uint8Array(32).fill(7)),
  },
})

describe('privateKeyAccount', () => {
  it('signs a transaction as ethers’ Wallet does, and sends through digicapEthersSigner', async () => {
    const wallet = anvil.signers[1] as Wallet
    const account = privateKeyAccount(wallet.privateKey as `0x${string}`)
    expect(account.address).toBe(wallet.address)
    const unsigned = Transaction.from({
      type: 2,
      chainId: anvil.chainId,
      nonce: 3,
      gasLimit: 21_000n,
      maxFeePerGas: 10n ** 9n,
      maxPriorityFeePerGas: 1n,
      to: anvil.accounts[2] as string,
      value: 5n,
    })
    expect(await account.signTransaction?.(unsigned.unsignedSerialized as `0x${string}`)).toBe(
      await wallet.signTransaction(unsigned),
    )
    const sender = digicapEthersSigner(account, anvil.provider)
    const tx = await sender.sendTransaction({ to: anvil.accounts[3] as string, value: 7n })
    expect((await tx.wait())?.from).toBe(wallet.address)
  })

  it('refuses a bad key with a typed error', () => {
    expect(() => privateKeyAccount(new Uint8Array(31))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })
})

describe('nodeAccountSigner (no key in this process)', () => {
  it('signs typed data and sends a transaction as the node’s account', async () => {
    const signer = nodeAccountSigner(anvil.rpcUrl, anvil.accounts[2] as string)
    const td = typedData(Number(anvil.chainId))
    expect(recoverTypedDataSigner(td, await signTypedDataWith(signer, td))).toBe(signer.address)
    const sender = digicapEthersSigner(signer, anvil.provider)
    const tx = await sender.sendTransaction({ to: anvil.accounts[3] as string, value: 9n })
    expect((await tx.wait())?.from).toBe(signer.address)
  })

  it('a node that holds no key for the account: the signer fails with a typed error', async () => {
    const stranger = nodeAccountSigner(anvil.rpcUrl, Wallet.createRandom().address)
    await expect(
      signTypedDataWith(stranger, typedData(Number(anvil.chainId))),
    ).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
    })
  })
})
