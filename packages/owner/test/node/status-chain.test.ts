/**
 * `status`'s chain reads without ethers (ADR 0042): the same answers as ethers on a real anvil
 * with a deployed registry, the libp2p peer id without libp2p, and typed errors (`CHAIN_READ`,
 * `INVALID_ARGUMENT`) for an address with no contract and for a lying RPC.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { capsuleRegistryAbi, connectDigicap, deployDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { Interface, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isPeerIdString, peerIdOfPublicKey } from '../../src/node/peer-id.ts'
import {
  balanceOf,
  headBlock,
  IS_OPERATOR_SELECTOR,
  isOperator,
  readOperatorStatus,
} from '../../src/node/status-chain.ts'

it('the isOperator selector is the ABI one', () => {
  expect(new Interface(capsuleRegistryAbi).getFunction('isOperator')?.selector).toBe(
    IS_OPERATOR_SELECTOR,
  )
})

it('the peer id of an Ed25519 key is libp2p’s; another length is INVALID_ARGUMENT', () => {
  for (let i = 0; i < 32; i++) {
    const raw = new Uint8Array(randomBytes(32))
    if (i === 0) raw.fill(0)
    expect(peerIdOfPublicKey(raw)).toBe(peerIdFromPublicKey(publicKeyFromRaw(raw)).toString())
  }
  for (const n of [0, 31, 33])
    expect(() => peerIdOfPublicKey(new Uint8Array(n))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
})

it('a card’s peer id is taken when libp2p parses it: Ed25519 and RSA forms, not a truncated or foreign one', () => {
  const ed = peerIdOfPublicKey(new Uint8Array(randomBytes(32)))
  const rsa = 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'
  for (const good of [ed, rsa]) {
    expect(peerIdFromString(good).toString()).toBe(good)
    expect(isPeerIdString(good)).toBe(true)
  }
  for (const bad of [
    ed.slice(0, -1),
    `${ed}1`,
    rsa.slice(0, -2),
    'not a peer id',
    '',
    42,
    `0${ed}`,
  ]) {
    expect(() => peerIdFromString(bad as string)).toThrow()
    expect(isPeerIdString(bad)).toBe(false)
  }
})

describe('on a real anvil', () => {
  let anvil: Anvil
  let addresses: Awaited<ReturnType<typeof deployDigicap>>
  let registry: string
  beforeAll(async () => {
    anvil = await startAnvil()
    addresses = await deployDigicap(anvil.signers[0] as Wallet)
    registry = addresses.capsuleRegistry
  })
  afterAll(() => anvil?.stop())

  it('head, balances and isOperator read as ethers reads them', async () => {
    const owner = anvil.signers[1] as Wallet
    const operator = Wallet.createRandom().address
    const { capsuleRegistry } = connectDigicap(addresses, owner)
    expect(await isOperator(anvil.rpcUrl, registry, owner.address, operator)).toBe(false)
    await (await capsuleRegistry.setOperator(operator, true)).wait()
    expect(await isOperator(anvil.rpcUrl, registry, owner.address, operator)).toBe(true)
    expect(await capsuleRegistry.isOperator(owner.address, operator)).toBe(true)
    expect(await headBlock(anvil.rpcUrl)).toBe(await anvil.provider.getBlockNumber())
    expect(await balanceOf(anvil.rpcUrl, owner.address)).toBe(
      await anvil.provider.getBalance(owner.address),
    )
    expect(await readOperatorStatus(anvil.rpcUrl, registry, owner.address, operator)).toEqual({
      address: operator,
      approved: true,
      balanceWei: '0',
      warning: expect.stringContaining('no ETH for gas'),
    })
  })

  it('isOperator at an address with no contract is CHAIN_READ, not false', async () => {
    const nobody = Wallet.createRandom().address
    await expect(isOperator(anvil.rpcUrl, nobody, nobody, nobody)).rejects.toMatchObject({
      code: 'CHAIN_READ',
    })
  })
})

describe('a lying RPC', () => {
  let server: Server
  let url: string
  let answer: unknown
  beforeAll(async () => {
    server = createServer((_req, res) => res.end(JSON.stringify(answer)))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(() => new Promise((r) => server.close(r)))

  it.each([
    ['a number for a quantity', { jsonrpc: '2.0', id: 1, result: 5 }],
    ['a non-hex string', { jsonrpc: '2.0', id: 1, result: '0xzz' }],
    ['an RPC error', { jsonrpc: '2.0', id: 1, error: { code: -32000, message: 'no' } }],
    ['a short isOperator word', { jsonrpc: '2.0', id: 1, result: '0x01' }],
  ])('%s is CHAIN_READ', async (_, lie) => {
    answer = lie
    const a = Wallet.createRandom().address
    const reads: Promise<unknown>[] = [isOperator(url, a, a, a)]
    if (!('result' in lie && lie.result === '0x01')) reads.push(headBlock(url), balanceOf(url, a))
    for (const read of reads) await expect(read).rejects.toMatchObject({ code: 'CHAIN_READ' })
  })
})
