/**
 * The signer interface and its noble implementation: the same signature bytes as ethers'
 * Wallet, and `signTypedDataWith` refuses a signer that lies (wrong account, junk answer).
 */
import { Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import {
  ACCESS_REQUEST_TYPES,
  accessRequestDomain,
  capsuleTypedData,
  type DigicapSigner,
  privateKeySigner,
  recoverTypedDataSigner,
  signCapsuleHeader,
  signTypedDataWith,
  type TypedData,
  toHex,
} from '../src/index.ts'
import { build, detBytes, OTHER_KEY, OWNER, OWNER_KEY } from './fixtures.ts'

const b = build(detBytes('signer plaintext', 100), 64)
const accessRequest = (executor: string): TypedData => ({
  domain: accessRequestDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3'),
  types: ACCESS_REQUEST_TYPES,
  primaryType: 'AccessRequest',
  message: {
    capsuleId: toHex(detBytes('capsule id', 32)),
    executor,
    ephemeralKey: toHex(detBytes('ephemeral', 32)),
    measurement: toHex(detBytes('measurement', 32)),
    jobParamsHash: toHex(detBytes('job', 32)),
    fee: 10n ** 18n,
    nonce: 2n ** 255n + 7n,
    expiry: 1_900_000_000n,
  },
})

describe('privateKeySigner', () => {
  it('has the address of the key and signs the same bytes as an ethers Wallet', async () => {
    const signer = privateKeySigner(OWNER_KEY)
    expect(signer.address).toBe(OWNER)
    const wallet = new Wallet(toHex(OWNER_KEY))
    for (const td of [capsuleTypedData(b.header), accessRequest(OWNER)]) {
      const ours = await signer.signTypedData(td)
      expect(ours).toBe(await wallet.signTypedData(td.domain, td.types, td.message))
      expect(recoverTypedDataSigner(td, ours)).toBe(OWNER)
    }
    expect(await signer.signTypedData(capsuleTypedData(b.header))).toBe(
      toHex(signCapsuleHeader(b.header, OWNER_KEY)),
    )
  })

  it('takes a hex key, copies it, and refuses a key that is not on the curve', async () => {
    const key = Uint8Array.from(OWNER_KEY)
    const signer = privateKeySigner(key)
    key.fill(0)
    expect(privateKeySigner(toHex(OWNER_KEY)).address).toBe(OWNER)
    expect(
      recoverTypedDataSigner(
        accessRequest(OWNER),
        await signer.signTypedData(accessRequest(OWNER)),
      ),
    ).toBe(OWNER)
    for (const bad of [new Uint8Array(32), new Uint8Array(31), '0x1234', `0x${'ff'.repeat(32)}`]) {
      expect(() => privateKeySigner(bad as Uint8Array)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
      )
    }
  })
})

describe('signTypedDataWith', () => {
  const td = accessRequest(OWNER)

  it('returns the 65 checked bytes of an honest signer (noble or ethers)', async () => {
    const wallet = new Wallet(toHex(OWNER_KEY))
    const viaEthers: DigicapSigner = {
      address: wallet.address as `0x${string}`,
      signTypedData: async (t) =>
        (await wallet.signTypedData(t.domain, t.types, t.message)) as `0x${string}`,
    }
    const a = await signTypedDataWith(privateKeySigner(OWNER_KEY), td)
    const b2 = await signTypedDataWith(viaEthers, td)
    expect(a).toHaveLength(65)
    expect(toHex(a)).toBe(toHex(b2))
  })

  it('normalises v = 0/1 from a hardware-style signer to 27/28', async () => {
    const honest = privateKeySigner(OWNER_KEY)
    const hardware: DigicapSigner = {
      address: honest.address,
      signTypedData: async (t) => {
        const sig = Buffer.from((await honest.signTypedData(t)).slice(2), 'hex')
        sig[64] = (sig[64] as number) - 27
        return toHex(sig)
      },
    }
    const sig = await signTypedDataWith(hardware, td)
    expect([27, 28]).toContain(sig[64])
    expect(toHex(sig)).toBe(await honest.signTypedData(td))
  })

  it('checks with the recovery the caller passes (same checks: a liar is still refused)', async () => {
    const seen: Uint8Array[] = []
    const recover = (sig: Uint8Array) => {
      seen.push(sig)
      return recoverTypedDataSigner(td, sig)
    }
    const sig = await signTypedDataWith(privateKeySigner(OWNER_KEY), td, recover)
    expect(seen).toEqual([sig])
    const other = privateKeySigner(OTHER_KEY)
    const liar: DigicapSigner = { address: OWNER, signTypedData: (t) => other.signTypedData(t) }
    await expect(signTypedDataWith(liar, td, recover)).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
      details: { address: OWNER, recovered: other.address },
    })
  })

  it('refuses a signer that signs as another account', async () => {
    const other = privateKeySigner(OTHER_KEY)
    const liar: DigicapSigner = { address: OWNER, signTypedData: (t) => other.signTypedData(t) }
    await expect(signTypedDataWith(liar, td)).rejects.toMatchObject({
      code: 'CAPSULE_SIGNATURE',
      details: { address: OWNER, recovered: other.address },
    })
  })

  it('refuses junk answers with a typed error', async () => {
    for (const answer of [
      '0x',
      '0x1234',
      42,
      undefined,
      `0x${'00'.repeat(65)}`,
      `0x${'zz'.repeat(65)}`,
    ]) {
      const junk = { address: OWNER, signTypedData: async () => answer } as unknown as DigicapSigner
      await expect(signTypedDataWith(junk, td)).rejects.toMatchObject({ code: 'CAPSULE_SIGNATURE' })
    }
  })

  it('refuses a signer whose address is not an address', async () => {
    const bad = { ...privateKeySigner(OWNER_KEY), address: '0x1234' } as DigicapSigner
    await expect(signTypedDataWith(bad, td)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})
