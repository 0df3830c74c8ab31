/**
 * The keyguard's chain client over a quorum of real RPCs: anvil A with Digicap, anvil B a fork
 * of A at block n (a second real node of the same chain), then a chain-path grant in block
 * n + 1 on A only, so the two honest RPCs are a block apart and disagree on `latest`. Liars are
 * JSON-RPC proxies in front of A.
 */
import { createProvider, type DisagreementEvent, QuorumError } from '@digicap/contracts'
import { type RpcProxy, startAnvil, startRpcProxy } from '@digicap/contracts/testing'
import { fastPathProtocol, request } from '@digicap/protocol'
import { AbiCoder, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard, ethersChainClient } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { keyguardParts, quietLogger, requestAccess, storeKey } from './helpers/world.ts'

type Anvil = Awaited<ReturnType<typeof startAnvil>>

let w: KeyguardWorld
let forked: Anvil
/** The fork block: the newest block both A and B have. */
let n: number
/** Granted by chain path in block n + 1, on A only. */
let grantedCapsule: string
let grantId: string
/** Untouched after the fork. */
let quietCapsule: string

beforeAll(async () => {
  // Keyguards are built per request, over the chain clients under test.
  w = await keyguardWorld({ capsules: 2, keyguard: false })
  ;[grantedCapsule, quietCapsule] = w.capsules as [string, string]
  n = await w.chain.anvil.provider.getBlockNumber()
  forked = await startAnvil({
    args: ['--fork-url', w.chain.anvil.rpcUrl, '--fork-block-number', String(n)],
  })
  w.defer('forked anvil', () => forked.stop())
  grantId = await requestAccess(w.chain, grantedCapsule, w.exec.newEphemeral())
}, 60_000)

afterAll(() => w?.stop())

const chainId = 31337n
const TRUE = AbiCoder.defaultAbiCoder().encode(['bool'], [true])

async function proxy(rewrite: Parameters<typeof startRpcProxy>[1]): Promise<RpcProxy> {
  const p = await startRpcProxy(w.chain.anvil.rpcUrl, rewrite)
  w.defer('RPC proxy', () => p.close())
  return p
}

function clientOver(urls: string[], quorum: number) {
  const disagreements: DisagreementEvent[] = []
  const client = ethersChainClient({
    providers: urls.map((u) => createProvider(u, chainId)),
    quorum,
    signer: w.chain.owner,
    addresses: w.chain.addresses,
    chainId,
    onDisagreement: (e) => disagreements.push(e),
  })
  return { client, disagreements }
}

/** The three reads the fast path makes for one request, in parallel, as it makes them. */
const fastPathReads = (client: ReturnType<typeof clientOver>['client'], capsuleId: string) =>
  Promise.all([
    client.nonceUsed(w.chain.executor.address, capsuleId, 7n),
    client.checkAccess({
      capsuleId,
      executor: w.chain.executor.address,
      ephemeralKey: w.exec.newEphemeral(),
      measurement: w.chain.measurement,
      feePaid: 0n,
      fastPath: true,
      jobParams: '0x',
    }),
    client.runCount(capsuleId),
  ])

/** One signed fast-path request for `quietCapsule` to a keyguard reading through `client`. */
async function fastPathThrough(client: ReturnType<typeof clientOver>['client']) {
  const parts = await keyguardParts()
  w.defer('data dir', parts.cleanup)
  await storeKey(parts, quietCapsule, randomBytes(32))
  const keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: 0,
    startBlock: w.chain.addresses.deployBlock,
    fastPath: { enabled: true },
  })({ ...parts, chain: client, libp2p: w.kgNode, logger: quietLogger })
  await keyguard.start()
  await w.exec.node.peerStore.merge(w.kgNode.peerId, { multiaddrs: w.kgNode.getMultiaddrs() })
  const req = w.signed({ capsuleId: quietCapsule })
  try {
    return await request(w.exec.node, w.kgNode.peerId, fastPathProtocol, req)
  } finally {
    await keyguard.stop()
  }
}

describe('two honest RPCs a block apart', () => {
  it('answer the fast path’s reads at the block both have (unpinned reads disagreed and stopped the keyguard)', async () => {
    expect(await w.chain.anvil.provider.getBlockNumber()).toBe(n + 1)
    expect(await forked.provider.getBlockNumber()).toBe(n)
    const { client } = clientOver([w.chain.anvil.rpcUrl, forked.rpcUrl], 2)
    const [used, access, runs] = await fastPathReads(client, grantedCapsule)
    expect(used).toBe(false)
    expect(access).toEqual({ allowed: true, reason: 0 })
    expect(runs).toBe(0n) // at block n; A alone says 1
    expect(await client.nodePeerId(w.chain.executor.address)).toEqual(
      w.exec.node.peerId.toMultihash().bytes,
    )
  })

  it('reads a grant whose log a quorum returned at the log’s block, not the laggard’s', async () => {
    const sameAsA = await proxy((_c, r) => r)
    const { client } = clientOver([w.chain.anvil.rpcUrl, sameAsA.url, forked.rpcUrl], 2)
    // Without a log, reads sit on block n (B has it): the grant is not there yet.
    expect(await client.getGrant(grantId)).toBeUndefined()
    const logs = await client.grantLogs(w.chain.addresses.deployBlock, n + 1, [grantedCapsule])
    expect(logs.map((l) => [l.grantId, l.blockNumber])).toEqual([[grantId, n + 1]])
    expect(await client.getGrant(grantId)).toMatchObject({ grantId, capsuleId: grantedCapsule })
    expect(await client.runCount(grantedCapsule)).toBe(1n)
  })
})

describe('two honest RPCs a block apart and a liar', () => {
  it('serve a fast-path request end to end; the liar is named, never believed', async () => {
    const liar = await proxy((call, result) => (call.method === 'eth_call' ? TRUE : result))
    const { client, disagreements } = clientOver([w.chain.anvil.rpcUrl, forked.rpcUrl, liar.url], 2)
    const res = await fastPathThrough(client)
    expect(res.status).toBe('granted')
    const liarName = `#2 ${new URL(liar.url).host}`
    const named = new Set(
      disagreements.flatMap((d) =>
        d.dissent.filter((x) => x.rpc === liarName).map(() => d.operation),
      ),
    )
    // The executor's peer came from its registration log (quorum-counted), not a `getNode`.
    expect([...named].sort()).toEqual([
      'attestationRequired',
      'auditWindow',
      'capsuleRecord',
      'capsuleRegistry',
      'checkAccess',
      'nonceUsed',
      'runCount',
    ])
    // Every read the liar spoiled ran at block n, the newest block both honest RPCs have.
    const spoiled = disagreements.filter((d) => d.dissent.some((x) => x.rpc === liarName))
    expect(spoiled.every((d) => d.block === n)).toBe(true)
  })

  it('refuses a fast-path request busy (retry in 1 s) when no quorum agrees', async () => {
    const liar = await proxy((call, result) => (call.method === 'eth_call' ? TRUE : result))
    const { client } = clientOver([w.chain.anvil.rpcUrl, liar.url], 2)
    expect(await fastPathThrough(client)).toMatchObject({
      status: 'refused',
      reasonCode: 'busy',
      reason: 'rpc-quorum',
      retryAfterMs: 1000,
    })
  })

  it('refuses with a typed error when no two of three agree', async () => {
    const liar = await proxy((call, result) => (call.method === 'eth_call' ? TRUE : result))
    const { client } = clientOver([w.chain.anvil.rpcUrl, forked.rpcUrl, liar.url], 3)
    const err = await client.runCount(grantedCapsule).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(QuorumError)
    expect((err as QuorumError).details).toMatchObject({ operation: 'runCount', quorum: 3 })
  })
})
