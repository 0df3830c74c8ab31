/**
 * `sealAndPublish` names the policy it created, whatever the RPC it sends through says (ADR
 * 0091, the SDK's seal): the deployed address is the one ethers computed from the nonce it
 * signed, and it is named only once a quorum of the seal's RPCs (`rpcUrl` + `rpcUrls`) reads
 * there the code the expression compiles to — owner's `policy-code.ts`, the check the Pi's
 * seal and move use. Before, one RPC decided: answering an old nonce (one the owner created a
 * laxer policy with) and swallowing the creation made the capsule name that older policy, and
 * the registration landed on the real chain.
 * Real anvil with the contracts, real solc, real helia; the liar is a JSON-RPC server in front
 * of the anvil (fault injection).
 */
import { generateKeyPairSync } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type DigicapAddresses, deployDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { solcPolicyDeployer } from '@digicap/owner'
import { getCreateAddress, Transaction, type Wallet } from 'ethers'
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

/**
 * In front of `upstream`: answers `nonce` to `eth_getTransactionCount` and swallows the first
 * raw transaction (its hash answered, a receipt faked), then is honest again.
 */
async function startNonceLiar(upstream: string, nonce: number) {
  const swallowed = new Map<string, string>()
  const server = createServer(async (req, res) => {
    let body = ''
    for await (const c of req) body += c
    const msg = JSON.parse(body) as { id: number; method: string; params: unknown[] }
    const reply = (result: unknown) =>
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }))
    res.setHeader('content-type', 'application/json')
    if (swallowed.size === 0 && msg.method === 'eth_getTransactionCount') {
      return reply(`0x${nonce.toString(16)}`)
    }
    if (swallowed.size === 0 && msg.method === 'eth_sendRawTransaction') {
      const tx = Transaction.from(msg.params[0] as string)
      swallowed.set(tx.hash as string, tx.from as string)
      return reply(tx.hash)
    }
    const from = msg.method === 'eth_getTransactionReceipt' && swallowed.get(String(msg.params[0]))
    if (from) {
      return reply({
        transactionHash: msg.params[0],
        transactionIndex: '0x0',
        blockHash: `0x${'11'.repeat(32)}`,
        blockNumber: '0x1',
        from,
        to: null,
        cumulativeGasUsed: '0x5208',
        gasUsed: '0x5208',
        effectiveGasPrice: '0x1',
        contractAddress: null,
        logs: [],
        logsBloom: `0x${'00'.repeat(256)}`,
        status: '0x1',
        type: '0x2',
      })
    }
    const answer = await fetch(upstream, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    })
    res.end(await answer.text())
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    swallowed,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

const { publicKey } = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
})
const card = {
  peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
  wrappingKey: { scheme: 'software-rsa-oaep-sha256', pem: publicKey },
  recoveryPublicKey: `0x${'22'.repeat(32)}`,
}

it('a nonce lie (the owner’s older, laxer policy) is POLICY_CODE: no capsule names it', async () => {
  const owner = anvil.signers[1] as Wallet
  const sent = () => anvil.provider.getTransactionCount(owner.address)
  // The owner's older, laxer policy.
  const olderNonce = await sent()
  const older = await solcPolicyDeployer(owner, { nodeRegistry: contracts.nodeRegistry }).deploy(
    'maxRuns(1000000)',
  )
  expect(older.address).toBe(getCreateAddress({ from: owner.address, nonce: olderNonce }))

  const liar = await startNonceLiar(anvil.rpcUrl, olderNonce)
  const nonce = await sent()
  try {
    const outcome = await sealAndPublish({
      network: defineNetwork({
        chainId: Number(anvil.chainId),
        rpcUrl: liar.url,
        addresses: contracts,
      }),
      rpcUrls: [anvil.rpcUrl, anvil.rpcUrl],
      quorum: 2,
      owner: localSigner(owner.privateKey as `0x${string}`),
      keyguard: card,
      data: new TextEncoder().encode('sealed through a liar'),
      policy: 'maxRuns(1)',
    }).then(
      async (published) => {
        await published.stop()
        return published
      },
      (err: unknown) => err,
    )
    // Before: it resolved, the capsule naming `older.address`.
    expect(outcome).toMatchObject({ code: 'POLICY_CODE' })
  } finally {
    await liar.close()
  }
  expect(liar.swallowed.size).toBe(1)
  expect(await sent()).toBe(nonce) // the creation was swallowed, no registration sent
}, 240_000)

it('with honest RPCs the seal names the policy at the address of the nonce it signed', async () => {
  const owner = anvil.signers[2] as Wallet
  const nonce = await anvil.provider.getTransactionCount(owner.address)
  const published = await sealAndPublish({
    network: defineNetwork({
      chainId: Number(anvil.chainId),
      rpcUrl: anvil.rpcUrl,
      addresses: contracts,
    }),
    rpcUrls: [anvil.rpcUrl],
    owner: localSigner(owner.privateKey as `0x${string}`),
    keyguard: card,
    data: new TextEncoder().encode('sealed honestly'),
    policy: 'maxRuns(1)',
  })
  await published.stop()
  expect(published.policy).toBe(getCreateAddress({ from: owner.address, nonce }))
}, 240_000)

it('rpcUrls that are not http(s) URLs, or a quorum above them, are refused before any call', async () => {
  const owner = anvil.signers[3] as Wallet
  const base = {
    network: defineNetwork({ chainId: 31337, rpcUrl: 'http://127.0.0.1:1', addresses: contracts }),
    owner: localSigner(owner.privateKey as `0x${string}`),
    keyguard: card,
    data: new TextEncoder().encode('x'),
    policy: 'maxRuns(1)',
  }
  await expect(sealAndPublish({ ...base, rpcUrls: ['ws://x'] })).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  })
  await expect(
    sealAndPublish({ ...base, rpcUrls: ['http://127.0.0.1:2'], quorum: 3 }),
  ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
})
