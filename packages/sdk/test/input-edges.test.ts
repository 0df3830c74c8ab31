/**
 * Input edges of the SDK's public calls (review 119, attacker; review 120 added the
 * non-finite timeouts).
 * - `sealAndPublish` takes any non-empty string as the card's `peerId`: a corrupted or forged
 *   card is not refused before the chain; the owner pays for a policy and a registration of a
 *   capsule bound to a keyguard peer that cannot exist, which no keyguard adopts (no one can open
 *   it). The README promises "refuses a bad card … before any network call".
 * - `waitForResult({ timeoutMs })` above Node's timer limit (2^31-1 ms, ~24.8 days) times out
 *   at once (Node fires such a timer after 1 ms) instead of waiting.
 * The receiver runs for real (libp2p on loopback); the RPC answers only `eth_chainId`.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineNetwork, generateReceiverKey, localSigner, openReceiver } from '../src/index.ts'
import { sealAndPublish } from '../src/seal.ts'

let server: Server
let rpcUrl: string

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => {
      body += c
    })
    req.on('end', () => {
      const msg = JSON.parse(body) as { id: number; method: string }
      res.end(
        JSON.stringify(
          msg.method === 'eth_chainId'
            ? { jsonrpc: '2.0', id: msg.id, result: '0x7a69' }
            : { jsonrpc: '2.0', id: msg.id, error: { code: -32000, message: 'review 119' } },
        ),
      )
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  rpcUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise((r) => server.close(r)))

const network = () =>
  defineNetwork({
    chainId: 31337,
    rpcUrl: 'http://127.0.0.1:1',
    addresses: {
      capsuleRegistry: '0x1111111111111111111111111111111111111111',
      nodeRegistry: '0x2222222222222222222222222222222222222222',
      accessController: '0x3333333333333333333333333333333333333333',
    },
  })

describe('SDK input edges', () => {
  it('a card whose peerId is not a libp2p peer id is INVALID_ARGUMENT before any network call', async () => {
    const card = {
      peerId: 'not a peer id',
      wrappingKey: {
        scheme: 'tpm2-rsa-oaep-sha256',
        pem: '-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----',
      },
      recoveryPublicKey: `0x${'22'.repeat(32)}`,
    }
    await expect(
      sealAndPublish({
        network: network(),
        owner: localSigner(`0x${'11'.repeat(32)}`),
        keyguard: card,
        data: new TextEncoder().encode('x'),
        policy: 'maxRuns(1)',
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })

  it('waitForResult with a timeout past 2^31-1 ms waits instead of timing out at once', async () => {
    const receiver = await openReceiver({
      network: { ...network(), rpcUrl },
      key: generateReceiverKey().privateKey,
    })
    try {
      let settled = false
      const waiting = receiver.waitForResult({ timeoutMs: 2 ** 32 }).finally(() => {
        settled = true
      })
      waiting.catch(() => undefined)
      // Another call's short wait ends first: the long one must still be waiting then.
      await expect(receiver.waitForResult({ timeoutMs: 2000 })).rejects.toMatchObject({
        code: 'RESULT_TIMEOUT',
      })
      expect(settled).toBe(false)
    } finally {
      await receiver.stop()
    }
  }, 60_000)

  it('waitForResult refuses a timeout that is NaN, infinite or negative (INVALID_ARGUMENT)', async () => {
    const receiver = await openReceiver({
      network: { ...network(), rpcUrl },
      key: generateReceiverKey().privateKey,
    })
    try {
      for (const timeoutMs of [Number.NaN, Number.POSITIVE_INFINITY, -1]) {
        await expect(receiver.waitForResult({ timeoutMs })).rejects.toMatchObject({
          code: 'INVALID_ARGUMENT',
        })
      }
    } finally {
      await receiver.stop()
    }
  }, 60_000)
})
