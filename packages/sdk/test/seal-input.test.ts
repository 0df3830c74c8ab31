/**
 * `sealAndPublish` refuses bad input with a typed error before it touches the chain or the
 * network: every case here points at an RPC that cannot answer, so reaching it would be
 * `CHAIN_READ`, not the error the case expects.
 */
import { privateKeySigner } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import { defineNetwork, localSigner } from '../src/index.ts'
import { parseReceiver, sealAndPublish } from '../src/seal.ts'

const network = defineNetwork({
  chainId: 31337,
  rpcUrl: 'http://127.0.0.1:1',
  addresses: {
    capsuleRegistry: '0x1111111111111111111111111111111111111111',
    nodeRegistry: '0x2222222222222222222222222222222222222222',
    accessController: '0x3333333333333333333333333333333333333333',
  },
})
const KEY = `0x${'11'.repeat(32)}` as const
const card = {
  peerId: '12D3KooWAbcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTU',
  wrappingKey: {
    scheme: 'tpm2-rsa-oaep-sha256',
    pem: '-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----',
  },
  recoveryPublicKey: `0x${'22'.repeat(32)}`,
}
const base = {
  network,
  owner: localSigner(KEY),
  keyguard: card,
  data: new TextEncoder().encode('x'),
  policy: 'maxRuns(1)',
}

describe('sealAndPublish input checks', () => {
  it.each([
    [
      'an owner signer without signTransaction',
      { owner: privateKeySigner(KEY) },
      'SIGNER_UNSUPPORTED',
    ],
    ['a card that is not one', { keyguard: { peerId: 'x' } }, 'INVALID_ARGUMENT'],
    [
      'a card with a short recovery key',
      { keyguard: { ...card, recoveryPublicKey: '0x22' } },
      'INVALID_ARGUMENT',
    ],
    [
      'a card with an unknown scheme',
      { keyguard: { ...card, wrappingKey: { scheme: 'rsa-pkcs1', pem: 'x' } } },
      'INVALID_ARGUMENT',
    ],
    ['empty data', { data: new Uint8Array(0) }, 'INVALID_ARGUMENT'],
    ['data that is not bytes', { data: 'text' }, 'INVALID_ARGUMENT'],
    ['a receiver that is not a key', { receivers: ['0x1234@12D3KooW'] }, 'INVALID_ARGUMENT'],
    [
      'code whose entry is not one of its files',
      { code: { runtime: 'quickjs', entry: 'main.js', files: { 'other.js': new Uint8Array(1) } } },
      'INVALID_ARGUMENT',
    ],
    ['an unknown network', { network: 'nowhere' }, 'NETWORK_UNKNOWN'],
  ])('refuses %s (%s) before any network call', async (_, patch, code) => {
    await expect(sealAndPublish({ ...base, ...patch } as never)).rejects.toMatchObject({ code })
  })

  it('with good input it goes on to the chain (here: unreachable, CHAIN_READ)', async () => {
    await expect(sealAndPublish(base)).rejects.toMatchObject({ code: 'CHAIN_READ' })
  })

  it('a card given as JSON text is read like the object', async () => {
    await expect(sealAndPublish({ ...base, keyguard: JSON.stringify(card) })).rejects.toMatchObject(
      {
        code: 'CHAIN_READ',
      },
    )
    await expect(sealAndPublish({ ...base, keyguard: '{not json' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
  })
})

describe('parseReceiver', () => {
  const key = `0x${'ab'.repeat(32)}`
  it('reads 0x<key> and 0x<key>@<peer id>', () => {
    expect(parseReceiver(key)).toEqual({ publicKey: new Uint8Array(32).fill(0xab) })
    expect(parseReceiver(`${key}@${card.peerId}`)).toEqual({
      publicKey: new Uint8Array(32).fill(0xab),
      peerId: card.peerId,
    })
  })
  it.each([
    `${key}@`,
    `${key}@0OIl`,
    key.slice(0, -2),
    `${key}00`,
    `ab${key.slice(2)}`,
    '',
  ])('refuses %j with INVALID_ARGUMENT', (text) => {
    expect(() => parseReceiver(text)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })
})
