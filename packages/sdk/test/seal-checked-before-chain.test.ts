/**
 * What `sealAndPublish` refuses before any transaction: receiver objects and policy objects
 * are checked as their text forms are (review 120).
 *
 * Review 119 (attacker): `sealAndPublish` checks receivers given as text before any network
 * call, but passes receiver *objects* (`{ publicKey, peerId }`, which the README accepts) through
 * unchecked. A malformed one (a 31-byte key, e.g. from a truncated or hostile receiver list) is
 * refused only when capsule-core encodes the header, after the last chunk, by which time the
 * policy deployment (ADR 0048, overlapped with the seal) has been sent and paid for by the
 * owner. The README promises a malformed receiver is refused "before any network call".
 * A real anvil with the contracts deployed; a software-RSA card.
 */
import { generateKeyPairSync } from 'node:crypto'
import { type DigicapAddresses, deployDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import type { Wallet } from 'ethers'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { defineNetwork, localSigner } from '../src/index.ts'
import { sealAndPublish } from '../src/seal.ts'

let anvil: Anvil
let contracts: DigicapAddresses

beforeAll(async () => {
  anvil = await startAnvil()
  contracts = await deployDigicap(anvil.signers[0] as Wallet)
}, 120_000)
afterAll(async () => {
  await anvil?.stop()
})

it('a receiver object with a 31-byte key is INVALID_ARGUMENT with no transaction sent', async () => {
  const owner = anvil.signers[1] as Wallet
  const { publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
  const network = defineNetwork({
    chainId: Number(anvil.chainId),
    rpcUrl: anvil.rpcUrl,
    addresses: contracts,
  })
  const nonce = await anvil.provider.getTransactionCount(owner.address)
  await expect(
    sealAndPublish({
      network,
      owner: localSigner(owner.privateKey as `0x${string}`),
      keyguard: {
        peerId: '12D3KooWAbcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTU',
        wrappingKey: { scheme: 'software-rsa-oaep-sha256', pem: publicKey },
        recoveryPublicKey: `0x${'22'.repeat(32)}`,
      },
      data: new TextEncoder().encode('review 119'),
      policy: 'maxRuns(1)',
      receivers: [{ publicKey: new Uint8Array(31) }],
    }),
  ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  expect(await anvil.provider.getTransactionCount(owner.address)).toBe(nonce)
}, 240_000)

it('a policy object whose address is not an address is INVALID_ARGUMENT before any network call', async () => {
  const { publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
  // An RPC that cannot answer: a network call would fail CHAIN_READ first.
  const network = defineNetwork({
    chainId: 31337,
    rpcUrl: 'http://127.0.0.1:1',
    addresses: contracts,
  })
  for (const [policy, code] of [
    [{ address: '0x1234' }, 'INVALID_ARGUMENT'],
    [{ address: 42 }, 'INVALID_ARGUMENT'],
    [null, 'INVALID_ARGUMENT'],
    ['maxRuns(', 'POLICY_EXPRESSION'],
  ] as const) {
    await expect(
      sealAndPublish({
        network,
        owner: localSigner(`0x${'11'.repeat(32)}`),
        keyguard: {
          peerId: '12D3KooWAbcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTU',
          wrappingKey: { scheme: 'software-rsa-oaep-sha256', pem: publicKey },
          recoveryPublicKey: `0x${'22'.repeat(32)}`,
        },
        data: new TextEncoder().encode('review 120'),
        policy: policy as never,
      }),
    ).rejects.toMatchObject({ code })
  }
})
