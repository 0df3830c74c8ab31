/**
 * The receiver's grant reads against a lying or broken RPC (fault injection: a tiny JSON-RPC
 * server answering what each case needs). Every bad answer is a typed error, never a grant.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { AbiCoder } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ChainMismatchError,
  ChainReadError,
  chainCapsuleRegistry,
  chainResultGrants,
  defineNetwork,
  openReceiver,
} from '../src/index.ts'

let answer: (method: string, params: unknown[]) => unknown = () => ({ result: '0x' })
let server: Server
let url: string
beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (d) => {
      body += d
    })
    req.on('end', () => {
      const { method, id, params } = JSON.parse(body) as {
        method: string
        id: number
        params: unknown[]
      }
      const a = answer(method, params)
      res.setHeader('content-type', 'application/json')
      res.end(typeof a === 'string' ? a : JSON.stringify({ jsonrpc: '2.0', id, ...(a as object) }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((r) => server.close(() => r())))

const net = () =>
  defineNetwork({
    chainId: 31337,
    rpcUrl: url,
    addresses: {
      capsuleRegistry: '0x1111111111111111111111111111111111111111',
      nodeRegistry: '0x2222222222222222222222222222222222222222',
      accessController: '0x3333333333333333333333333333333333333333',
    },
  })
const word = (hex: string) => hex.padStart(64, '0')
const grantId = new Uint8Array(32).fill(9)

describe('chainResultGrants', () => {
  it('decodes a stored grant (executor, run index, capsule, ephemeral key)', async () => {
    answer = () => ({
      result: `0x${word('ab'.repeat(20))}${word('05')}${word('ffff')}${word('01')}${'cc'.repeat(32)}${'dd'.repeat(32)}`,
    })
    const g = await chainResultGrants(net()).getGrant(grantId)
    expect(g).toEqual({
      executor: new Uint8Array(20).fill(0xab),
      runIndex: 5n,
      capsuleId: new Uint8Array(32).fill(0xcc),
      ephemeralKey: new Uint8Array(32).fill(0xdd),
    })
  })

  it('with confirmations, reads at that many blocks below the head', async () => {
    const tags: unknown[] = []
    answer = (method, params) => {
      if (method === 'eth_blockNumber') return { result: '0x10' }
      tags.push(params[1])
      return {
        result: `0x${word('ab'.repeat(20))}${word('05')}${word('ffff')}${word('01')}${'cc'.repeat(32)}${'dd'.repeat(32)}`,
      }
    }
    expect(await chainResultGrants(net(), { confirmations: 2 }).getGrant(grantId)).toBeDefined()
    expect(tags).toEqual(['0xe'])
    expect(() => chainResultGrants(net(), { confirmations: -1 })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(() => chainResultGrants(net(), { rpcUrls: [url], quorum: 3 })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })

  it('GrantNotFound is "not yet" (undefined), not an error', async () => {
    // keccak256("GrantNotFound(bytes32)")[0..4]
    const { keccak_256 } = await import('@noble/hashes/sha3.js')
    const sel = Buffer.from(
      keccak_256(new TextEncoder().encode('GrantNotFound(bytes32)')).subarray(0, 4),
    ).toString('hex')
    answer = () => ({
      error: { code: 3, message: 'execution reverted', data: `0x${sel}${'09'.repeat(32)}` },
    })
    expect(await chainResultGrants(net()).getGrant(grantId)).toBeUndefined()
  })

  it.each([
    ['a short answer', { result: `0x${word('01')}` }],
    ['a long answer', { result: `0x${word('01').repeat(7)}` }],
    ['a non-hex answer', { result: `0x${'zz'.repeat(192)}` }],
    // the executor's decoder, shared since (@digicap/contracts/light): words out of range
    [
      'an executor word with high bytes',
      { result: `0x${'ee'.repeat(32)}${word('05')}${word('ffff')}${word('01')}${'cc'.repeat(64)}` },
    ],
    [
      'a fastPath that is no bool',
      {
        result: `0x${word('ab'.repeat(20))}${word('05')}${word('ffff')}${word('02')}${'cc'.repeat(64)}`,
      },
    ],
    ['a number', { result: 5 }],
    ['another revert', { error: { code: 3, message: 'execution reverted', data: '0xdeadbeef' } }],
    ['no result at all', {}],
    ['not JSON', 'garbage'],
  ])('%s is CHAIN_READ', async (_, a) => {
    answer = () => a
    await expect(chainResultGrants(net()).getGrant(grantId)).rejects.toBeInstanceOf(ChainReadError)
  })

  it('an unreachable RPC is CHAIN_READ naming the URL', async () => {
    const n = defineNetwork({ ...net(), rpcUrl: 'http://127.0.0.1:1' })
    await expect(chainResultGrants(n).getGrant(grantId)).rejects.toMatchObject({
      code: 'CHAIN_READ',
      details: { rpcUrl: 'http://127.0.0.1:1' },
    })
  })

  it('a grant id that is not 32 bytes is never asked for', async () => {
    let asked = false
    answer = () => {
      asked = true
      return { result: '0x' }
    }
    expect(await chainResultGrants(net()).getGrant(new Uint8Array(31))).toBeUndefined()
    expect(asked).toBe(false)
  })
})

describe('chainCapsuleRegistry (the receiver reads which capsule a result is for)', () => {
  const capsuleId = new Uint8Array(32).fill(7)
  const record = (cid: string) =>
    AbiCoder.defaultAbiCoder().encode(
      [
        'tuple(address policy,uint40 registeredAt,bool revoked,uint48 runs,address owner,bytes32 plaintextHash,bytes32 keyguardKeyId,string cid,bytes keyguardPeerId)',
      ],
      [
        [
          `0x${'11'.repeat(20)}`,
          5,
          false,
          2,
          `0x${'ab'.repeat(20)}`,
          `0x${'cc'.repeat(32)}`,
          `0x${'dd'.repeat(32)}`,
          cid,
          '0x0102',
        ],
      ],
    )

  it('decodes the owner and CID of an ABI-encoded Capsule (as ethers encodes it)', async () => {
    const cid = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'
    answer = () => ({ result: record(cid) })
    expect(await chainCapsuleRegistry(net()).getCapsule(capsuleId)).toEqual({
      owner: `0x${'ab'.repeat(20)}`,
      cid,
    })
  })

  it('CapsuleNotFound is undefined; a truncated or lying answer is CHAIN_READ', async () => {
    const { keccak_256 } = await import('@noble/hashes/sha3.js')
    const sel = Buffer.from(
      keccak_256(new TextEncoder().encode('CapsuleNotFound(bytes32)')).subarray(0, 4),
    ).toString('hex')
    answer = () => ({
      error: { code: 3, message: 'execution reverted', data: `0x${sel}${'07'.repeat(32)}` },
    })
    expect(await chainCapsuleRegistry(net()).getCapsule(capsuleId)).toBeUndefined()
    for (const result of [
      record('x').slice(0, 2 + 64 * 5),
      `0x${word('20')}${word('01').repeat(7)}${word('ffffffffff')}${word('01')}`,
      record('c'.repeat(300)),
    ]) {
      answer = () => ({ result })
      await expect(chainCapsuleRegistry(net()).getCapsule(capsuleId)).rejects.toBeInstanceOf(
        ChainReadError,
      )
    }
  })
})

describe('openReceiver against the wrong chain', () => {
  it('refuses with CHAIN_MISMATCH before starting anything', async () => {
    answer = (m) => (m === 'eth_chainId' ? { result: '0x1' } : { result: '0x' })
    await expect(
      openReceiver({ network: net(), key: new Uint8Array(32).fill(1) }),
    ).rejects.toBeInstanceOf(ChainMismatchError)
  })

  it('loads its replayFile at start: a file that is not a replay memory is REPLAY_STORE, and nothing is left running', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises')
    const { join } = await import('node:path')
    const { tmpdir } = await import('node:os')
    const dir = await mkdtemp(join(tmpdir(), 'digicap-sdk-replays-'))
    try {
      const replayFile = join(dir, 'replays.json')
      await writeFile(replayFile, '{"version":1,"ids":["r0xnot-an-id"]}')
      answer = (m) => (m === 'eth_chainId' ? { result: '0x7a69' } : { result: '0x' })
      await expect(
        openReceiver({ network: net(), key: new Uint8Array(32).fill(1), replayFile }),
      ).rejects.toMatchObject({ code: 'REPLAY_STORE', details: { why: 'malformed id' } })
      // a good file (as a previous run wrote it) opens, and the receiver starts
      await writeFile(replayFile, `{"version":1,"ids":["r0x${'ab'.repeat(32)}"]}`)
      const r = await openReceiver({ network: net(), key: new Uint8Array(32).fill(1), replayFile })
      await r.stop()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses replayFile and replays together with INVALID_ARGUMENT', async () => {
    await expect(
      openReceiver({
        network: net(),
        key: new Uint8Array(32).fill(1),
        replayFile: '/tmp/x.json',
        replays: { load: async () => [], add: async () => {} },
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })

  it('refuses a key that is not 32 bytes with INVALID_ARGUMENT', async () => {
    await expect(openReceiver({ network: net(), key: new Uint8Array(16) })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
  })
})
