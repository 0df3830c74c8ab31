/**
 * The ethers adapter: anvil's own `eth_signTypedData_v4` (a JsonRpcSigner, no key in this
 * process) and a Wallet both give signatures capsule-core recovers to the signer's address.
 */
import {
  ACCESS_REQUEST_TYPES,
  accessRequestDomain,
  privateKeySigner,
  recoverTypedDataSigner,
  signTypedDataWith,
  type TypedData,
  toHex,
} from '@digicap/capsule-core'
import { type JsonRpcSigner, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Anvil, startAnvil } from '../src/anvil.ts'
import { ethersSigner } from '../src/ethers-signer.ts'

let anvil: Anvil
beforeAll(async () => {
  anvil = await startAnvil()
})
afterAll(() => anvil?.stop())

const request = (executor: string): TypedData => ({
  domain: accessRequestDomain(anvil.chainId, '0x5FbDB2315678afecb367f032d93F642f64180aa3'),
  types: { EIP712Domain: [], ...ACCESS_REQUEST_TYPES },
  primaryType: 'AccessRequest',
  message: {
    capsuleId: toHex(new Uint8Array(32).fill(1)),
    executor,
    ephemeralKey: toHex(new Uint8Array(32).fill(2)),
    measurement: toHex(new Uint8Array(32).fill(3)),
    jobParamsHash: toHex(new Uint8Array(32).fill(4)),
    fee: 10n ** 18n,
    nonce: 2n ** 200n,
    expiry: 2_000_000_000n,
  },
})

describe('ethersSigner', () => {
  it("signs through anvil's eth_signTypedData_v4 (no key here) as the account", async () => {
    const rpc: JsonRpcSigner = await anvil.provider.getSigner(3)
    const signer = await ethersSigner(rpc)
    expect(signer.address).toBe(anvil.accounts[3])
    const td = request(signer.address)
    const sig = await signTypedDataWith(signer, td)
    expect(recoverTypedDataSigner(td, sig)).toBe(signer.address)
  })

  it('gives the bytes of the noble signer for the same key', async () => {
    const wallet = anvil.signers[1] as Wallet
    const viaEthers = await ethersSigner(wallet)
    const viaNoble = privateKeySigner(wallet.privateKey as `0x${string}`)
    expect(viaEthers.address).toBe(viaNoble.address)
    const td = request(wallet.address)
    expect(await viaEthers.signTypedData(td)).toBe(await viaNoble.signTypedData(td))
  })

  it('refuses what is not an ethers Signer, with a typed error', async () => {
    await expect(ethersSigner({} as Wallet)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    const liar = { getAddress: async () => '0x1234', signTypedData: async () => '0x' }
    await expect(ethersSigner(liar as unknown as Wallet)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
  })

  it('is caught by signTypedDataWith when the ethers signer signs as someone else', async () => {
    const other = new Wallet(toHex(new Uint8Array(32).fill(9)))
    const liar = {
      getAddress: async () => anvil.accounts[0],
      signTypedData: other.signTypedData.bind(other),
    }
    const signer = await ethersSigner(liar as unknown as Wallet)
    await expect(signTypedDataWith(signer, request(signer.address))).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
    })
  })
})
