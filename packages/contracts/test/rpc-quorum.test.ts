/**
 * The RPC quorum on real anvils: A with Digicap deployed, B a fork of A at block N (a second
 * real node serving the same chain, same block hashes), then one more block on A that changes
 * state, so the two honest RPCs are a block apart and disagree on `latest`. Liars are JSON-RPC
 * proxies in front of A.
 */

import { InvalidArgumentError } from '@digicap/capsule-core'
import {
  AbiCoder,
  Contract,
  hexlify,
  type JsonRpcApiProvider,
  randomBytes,
  type Wallet,
} from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Anvil, startAnvil } from '../src/anvil.ts'
import { QuorumError } from '../src/errors.ts'
import { nodeRegistryAbi } from '../src/index.ts'
import { createProvider } from '../src/provider.ts'
import { createRpcQuorum } from '../src/quorum/ethers-rpc-quorum.ts'
import type { DisagreementEvent, RpcQuorumInit } from '../src/quorum/rpc-quorum.ts'
import { type RpcProxy, type RpcRewrite, startRpcProxy } from '../src/rpc-proxy.ts'
import {
  bytes32,
  MIN_STAKE,
  peerId,
  ROLE_EXECUTOR,
  send,
  setupWorld,
  type World,
} from './helpers.ts'

let w: World
let forked: Anvil
/** The fork block: the newest block both A and B have. */
let n: number
const proxies: RpcProxy[] = []

const TRUE = AbiCoder.defaultAbiCoder().encode(['bool'], [true])
const FALSE = AbiCoder.defaultAbiCoder().encode(['bool'], [false])

beforeAll(async () => {
  w = await setupWorld()
  n = await w.anvil.provider.getBlockNumber()
  forked = await startAnvil({
    args: ['--fork-url', w.anvil.rpcUrl, '--fork-block-number', String(n)],
  })
  // Block n + 1, on A only: `other` becomes an active executor.
  await send(
    w.c.nodeRegistry.connect(w.other).register(peerId(), bytes32(), ROLE_EXECUTOR, {
      value: MIN_STAKE,
    }),
  )
})

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()))
  await forked?.stop()
  await w?.anvil.stop()
})

const url = (a: Anvil | RpcProxy): string => ('rpcUrl' in a ? a.rpcUrl : a.url)

async function liar(rewrite: RpcRewrite): Promise<RpcProxy> {
  const p = await startRpcProxy(w.anvil.rpcUrl, rewrite)
  proxies.push(p)
  return p
}

function quorumOf(rpcs: (Anvil | RpcProxy)[], init: Partial<RpcQuorumInit> = {}) {
  const events: DisagreementEvent[] = []
  const q = createRpcQuorum({
    providers: rpcs.map((r) => createProvider(url(r), 31337n)),
    onDisagreement: (e) => events.push(e),
    ...init,
  })
  return { q, events }
}

/** `NodeRegistry.isActive(node, executor)` at the pinned block. */
const isActive =
  (node: Wallet) => (c: { provider: JsonRpcApiProvider; blockTag: string | number }) =>
    new Contract(w.addresses.nodeRegistry, nodeRegistryAbi as never, c.provider)
      .getFunction('isActive')(node.address, ROLE_EXECUTOR, { blockTag: c.blockTag })
      .then(Boolean)

const hostOf = (p: RpcProxy) => new URL(p.url).host

describe('honest RPCs a block apart', () => {
  it('disagree on latest (the unpinned read refuses) but agree on the pinned block', async () => {
    expect(await w.anvil.provider.getBlockNumber()).toBe(n + 1)
    expect(await forked.provider.getBlockNumber()).toBe(n)
    const { q, events } = quorumOf([w.anvil, forked], { quorum: 2 })
    // What every read did before pinning: `latest` on each RPC, so A says yes and B says no.
    const unpinned = await q
      .agree('isActive', (provider) => isActive(w.other)({ provider, blockTag: 'latest' }))
      .catch((e: unknown) => e)
    expect(unpinned).toBeInstanceOf(QuorumError)
    // Pinned: both answer for block n, the newest block both have.
    expect(await q.read('isActive', isActive(w.other))).toBe(false)
    expect(await q.read('isActive', isActive(w.executor))).toBe(true)
    const pin = await q.pin()
    expect(pin.number).toBe(n)
    expect(pin.hash).toBe((await w.anvil.provider.getBlock(n))?.hash)
    expect(events).toEqual([])
  })
})

describe('a lying RPC among three', () => {
  it('is outvoted on an eth_call result and named; the honest answer is served', async () => {
    const lying = await liar((call, result) => (call.method === 'eth_call' ? TRUE : result))
    const { q, events } = quorumOf([w.anvil, forked, lying], { quorum: 2 })
    expect(await q.read('isActive', isActive(w.other))).toBe(false)
    const onRead = events.filter((e) => e.operation === 'isActive')
    expect(onRead).toEqual([
      {
        operation: 'isActive',
        block: n,
        dissent: [{ rpc: `#2 ${hostOf(lying)}`, index: 2, kind: 'differs' }],
      },
    ])
  })

  it('is outvoted when it serves a forked block hash and claims a far higher head', async () => {
    const lying = await liar((call, result) => {
      if (call.method === 'eth_blockNumber') return `0x${(n + 1000).toString(16)}`
      if (call.method === 'eth_getBlockByNumber' && result !== null) {
        return { ...(result as object), hash: hexlify(randomBytes(32)) }
      }
      return result
    })
    const { q, events } = quorumOf([w.anvil, forked, lying], { quorum: 2 })
    const pin = await q.pin()
    expect(pin).toEqual({ number: n, hash: (await w.anvil.provider.getBlock(n))?.hash })
    const onHash = events.filter((e) => e.operation === 'block hash')
    expect(onHash.at(-1)?.dissent).toEqual([
      { rpc: `#2 ${hostOf(lying)}`, index: 2, kind: 'differs' },
    ])
    // It answers eth_call at a block hash it never served honestly: only if it has that block.
    expect(await q.read('isActive', isActive(w.executor))).toBe(true)
  })

  it('cannot drag the pin back to an old block by claiming an old head', async () => {
    const lying = await liar((call, result) => (call.method === 'eth_blockNumber' ? '0x0' : result))
    const { q } = quorumOf([w.anvil, forked, lying], { quorum: 2 })
    expect((await q.pin()).number).toBe(n)
    expect(await q.read('isActive', isActive(w.executor))).toBe(true)
  })

  it('lets no answer through when two of three disagree: a typed, retryable error naming each', async () => {
    const saysNo = await liar((call, result) => (call.method === 'eth_call' ? FALSE : result))
    const broken = await liar((call, result) => {
      if (call.method === 'eth_call') throw new Error('upstream timeout')
      return result
    })
    const { q } = quorumOf([w.anvil, saysNo, broken], { quorum: 2 })
    const err = await q.read('isActive', isActive(w.other)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(QuorumError)
    const e = err as QuorumError
    expect(e.code).toBe('RPC_QUORUM')
    expect(e.shortMessage).toBe(`Fewer than 2 of 3 RPCs agree on isActive at block ${n + 1}`)
    expect(e.hint).toMatch(/^Retry shortly/)
    expect(e.details).toMatchObject({ operation: 'isActive', quorum: 2, block: n + 1, answers: 2 })
    expect(e.details.dissent).toEqual([
      { rpc: `#0 ${new URL(w.anvil.rpcUrl).host}`, index: 0, kind: 'differs', answer: 0 },
      { rpc: `#1 ${hostOf(saysNo)}`, index: 1, kind: 'differs', answer: 1 },
      { rpc: `#2 ${hostOf(broken)}`, index: 2, kind: 'failed', error: expect.any(String) },
    ])
  })

  it('refuses to pin when no quorum agrees on any recent block hash', async () => {
    const forks = await liar((call, result) =>
      call.method === 'eth_getBlockByNumber' && result !== null
        ? { ...(result as object), hash: hexlify(randomBytes(32)) }
        : result,
    )
    const { q } = quorumOf([forked, forks], { quorum: 2 })
    const err = (await q
      .read('isActive', isActive(w.executor))
      .catch((e: unknown) => e)) as QuorumError
    expect(err).toBeInstanceOf(QuorumError)
    expect(err.details).toMatchObject({ operation: 'block hash', quorum: 2 })
    expect(err.hint).toMatch(/^Retry shortly/)
  })
})

describe('the pinned block', () => {
  it('sits on the lagging RPC’s head, and moves to a noticed block once a quorum has it', async () => {
    const h = await w.anvil.provider.getBlockNumber()
    expect(h).toBe(n + 1)
    const sameAsA = await liar((_c, r) => r)
    const three = quorumOf([w.anvil, sameAsA, forked], { quorum: 2 })
    expect((await three.q.pin()).number).toBe(n) // every RPC has n
    expect(await three.q.read('isActive', isActive(w.other))).toBe(false)
    three.q.notice(h) // e.g. the log the caller acts on is in block h
    expect(await three.q.read('isActive', isActive(w.other))).toBe(true)
    expect((await three.q.pin()).number).toBe(h)
    expect(three.events.at(-1)?.dissent).toEqual([
      {
        rpc: `#2 ${new URL(forked.rpcUrl).host}`,
        index: 2,
        kind: 'failed',
        error: expect.any(String),
      },
    ])
    // Two RPCs, one of them a block behind: no quorum has h, so the pin stays on n.
    const two = quorumOf([w.anvil, forked], { quorum: 2 })
    two.q.notice(h)
    expect((await two.q.pin()).number).toBe(n)
    expect(await two.q.read('isActive', isActive(w.other))).toBe(false)
  })

  it('serves later reads with no extra round trip until a newer block is noticed', async () => {
    const counted = [await liar((_c, r) => r), await liar((_c, r) => r)]
    const { q } = quorumOf(counted, { quorum: 2, pinMaxAgeMs: 60_000 })
    const heads = () => counted.map((p) => p.counts.get('eth_blockNumber') ?? 0)
    const calls = () => counted.map((p) => p.counts.get('eth_call') ?? 0)
    expect(await q.read('isActive', isActive(w.deployer))).toBe(false)
    expect(heads()).toEqual([1, 1])
    for (let i = 0; i < 5; i++) await q.read('isActive', isActive(w.deployer))
    expect(heads()).toEqual([1, 1])
    expect(calls()).toEqual([6, 6])
    // A new block the reader knows about (its own transaction's receipt, say) moves the pin.
    const receipt = await send(
      w.c.nodeRegistry.connect(w.deployer).register(peerId(), bytes32(), ROLE_EXECUTOR, {
        value: MIN_STAKE,
      }),
    )
    expect(await q.read('isActive', isActive(w.deployer))).toBe(false) // still the old pin
    q.notice(receipt.blockNumber)
    expect(await q.read('isActive', isActive(w.deployer))).toBe(true)
    expect((await q.pin()).number).toBe(receipt.blockNumber)
    expect(heads()).toEqual([2, 2])
  })

  it('with one RPC reads at latest: no pin, no extra round trip', async () => {
    const one = await liar((_c, r) => r)
    const { q } = quorumOf([one])
    expect(await q.read('isActive', isActive(w.executor))).toBe(true)
    expect([...one.counts.keys()]).toEqual(['eth_call'])
  })

  it('rejects a quorum outside 1..providers', () => {
    expect(() => quorumOf([w.anvil, forked], { quorum: 3 })).toThrow(InvalidArgumentError)
    expect(() => quorumOf([])).toThrow(InvalidArgumentError)
    expect(() => quorumOf([w.anvil], { maxLag: -1 })).toThrow(InvalidArgumentError)
  })
})
