import { createProvider, deployDigicap } from '@digicap/contracts'
import { type RpcProxy, startRpcProxy } from '@digicap/contracts/testing'
import type { Libp2p } from '@libp2p/interface'
import { AbiCoder, hexlify, randomBytes, zeroPadValue } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ChainMismatchError,
  createKeyguard,
  ethersChainClient,
  type GrantWatcherEvent,
  grantWatcher,
  type Keyguard,
  type KeyguardEvent,
  keyReleaser,
  type ReleaseEvent,
} from '../src/index.ts'
import {
  type Chain,
  chainClientFor,
  createNode,
  type ExecutorSide,
  executorSide,
  type KeyguardParts,
  keyguardParts,
  quietLogger,
  registerCapsule,
  registerExecutor,
  requestAccess,
  setupChain,
  storeKey,
  until,
} from './helpers/world.ts'

let chain: Chain
let kgNode: Libp2p
let exec: ExecutorSide
const cleanups: (() => Promise<void>)[] = []

beforeAll(async () => {
  ;[chain, kgNode, exec] = await Promise.all([setupChain(), createNode(), executorSide()])
  await registerExecutor(chain, chain.executor, exec.node)
  await kgNode.peerStore.merge(exec.node.peerId, { multiaddrs: exec.node.getMultiaddrs() })
}, 60_000)

afterAll(async () => {
  for (const c of cleanups.reverse()) await c()
  await Promise.all([kgNode?.stop(), exec?.stop(), chain?.anvil.stop()])
})

/** A keyguard over fresh parts and a fresh capsule holding `dataKey`. */
async function freshKeyguard(
  options: { confirmations?: number; parts?: KeyguardParts; capsuleId?: string } = {},
) {
  const parts = options.parts ?? (await keyguardParts())
  const capsuleId = options.capsuleId ?? (await registerCapsule(chain, kgNode))
  const dataKey = randomBytes(32)
  if (options.capsuleId === undefined) await storeKey(parts, capsuleId, dataKey)
  const events: KeyguardEvent[] = []
  const keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: options.confirmations ?? 0,
    startBlock: chain.addresses.deployBlock,
    pollIntervalMs: 50,
    releaseAttemptTimeoutMs: 2000,
  })({
    sealer: parts.sealer,
    keyStore: parts.keyStore,
    journal: parts.journal,
    chain: chainClientFor(chain),
    libp2p: kgNode,
    logger: quietLogger,
  })
  for (const type of ['released', 'grant-refused', 'grant-accepted', 'reorg', 'release-failed']) {
    keyguard.events.addEventListener(type, (e) => events.push((e as CustomEvent).detail))
  }
  cleanups.push(async () => {
    await keyguard.stop()
    await parts.cleanup()
  })
  return { parts, capsuleId, dataKey, keyguard, events }
}

const refusals = (events: KeyguardEvent[], grantId: string) =>
  events
    .filter((e) => e.type === 'grant-refused' && e.grantId === grantId)
    .map((e) => (e as { reason: string }).reason)

describe('chain path', () => {
  it('serves an anvil grant over libp2p: release → ack → journal complete', async () => {
    const { parts, capsuleId, dataKey, keyguard, events } = await freshKeyguard()
    await keyguard.start()
    const eph = exec.newEphemeral()
    const grantId = await requestAccess(chain, capsuleId, eph)
    await until(() => events.some((e) => e.type === 'released' && e.grantId === grantId))
    expect(exec.received.get(grantId)).toEqual(dataKey)
    const entry = await parts.journal.get(grantId)
    expect(entry?.state).toBe('completed')
    expect(hexlify(entry?.executorKey ?? new Uint8Array())).toBe(eph)
    const status = await keyguard.status()
    expect(status.running).toBe(true)
    expect(status.sealer.kind).toBe('software')
    expect(status.sealer.warning).toMatch(/insecure|software/i)
    expect(status.chain.cursor?.number).toBeGreaterThan(0)
    expect(status.releases).toEqual({ pending: 0, inFlight: 0 })
    expect(status.counters.released).toBe(1)
  })

  it('refuses a replayed grant (same grant id again after complete) without serving it', async () => {
    const { parts, capsuleId, keyguard, events } = await freshKeyguard()
    await keyguard.start()
    const grantId = await requestAccess(chain, capsuleId, exec.newEphemeral())
    await until(() => events.some((e) => e.type === 'released' && e.grantId === grantId))
    const served = exec.releases.length
    await keyguard.stop()
    // A second keyguard on the same journal, with its cursor gone: it sees the log again.
    const { rm } = await import('node:fs/promises')
    await rm(`${parts.dir}/grant-cursor.json`)
    const again = await freshKeyguard({ parts, capsuleId })
    await again.keyguard.start()
    await again.keyguard.poll()
    await again.keyguard.idle()
    expect(refusals(again.events, grantId)).toEqual(['replayed'])
    expect(exec.releases.length).toBe(served)
  })

  it('keeps the journal entry begun when the executor cannot open the release', async () => {
    const { parts, capsuleId, keyguard, events } = await freshKeyguard()
    await keyguard.start()
    const grantId = await requestAccess(chain, capsuleId, hexlify(randomBytes(32))) // no private key
    await until(() => events.some((e) => e.type === 'release-failed' && e.grantId === grantId))
    expect(events.find((e) => e.type === 'release-failed')).toEqual({
      type: 'release-failed',
      grantId,
      reason: 'open-failed',
    })
    expect((await parts.journal.get(grantId))?.state).toBe('begun')
    expect((await keyguard.status()).releases.pending).toBe(1)
  })

  it('ignores a grant from a foreign AccessController for the same capsule id', async () => {
    const { capsuleId, keyguard, events } = await freshKeyguard()
    await keyguard.start()
    const foreign = await deployDigicap(chain.deployer, {
      minStake: 10n ** 16n,
      grantWindow: 600,
      disputeWindow: 3600,
      unbondingDelay: 3600,
    })
    const { connectDigicap } = await import('@digicap/contracts')
    const fc = connectDigicap(foreign, chain.deployer)
    await (
      await fc.nodeRegistry
        .connect(chain.executor)
        .register(exec.node.peerId.toMultihash().bytes, hexlify(randomBytes(32)), 1, {
          value: 10n ** 16n,
        })
    ).wait()
    await (
      await fc.capsuleRegistry
        .connect(chain.owner)
        .register(
          capsuleId,
          chain.policy,
          'bafy',
          hexlify(randomBytes(32)),
          kgNode.peerId.toMultihash().bytes,
          hexlify(randomBytes(32)),
        )
    ).wait()
    const tx = await fc.accessController
      .connect(chain.executor)
      .requestAccess(capsuleId, exec.newEphemeral(), chain.measurement, '0x')
    await tx.wait()
    const served = exec.releases.length
    await keyguard.poll()
    await keyguard.idle()
    expect(events.filter((e) => e.type === 'grant-accepted')).toEqual([])
    expect(exec.releases.length).toBe(served)
    // The real controller's grant for the same capsule is still served.
    const grantId = await requestAccess(chain, capsuleId, exec.newEphemeral())
    await until(() => events.some((e) => e.type === 'released' && e.grantId === grantId))
  })

  it('refuses to start on the wrong chain (eth_chainId mismatch)', async () => {
    const other = await setupChainOther()
    try {
      const parts = await keyguardParts()
      cleanups.push(parts.cleanup)
      const client = ethersChainClient({
        providers: [createProvider(other, 31337n)],
        addresses: chain.addresses,
        chainId: 31337n,
      })
      const keyguard = createKeyguard({ dataDir: parts.dir, confirmations: 0 })({
        sealer: parts.sealer,
        keyStore: parts.keyStore,
        journal: parts.journal,
        chain: client,
        libp2p: kgNode,
        logger: quietLogger,
      })
      const err = await keyguard.start().catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ChainMismatchError)
      expect((err as ChainMismatchError).code).toBe('CHAIN_MISMATCH')
      expect((err as ChainMismatchError).details).toMatchObject({ expected: '31337', got: '31338' })
      expect((await keyguard.status()).running).toBe(false)
    } finally {
      await stopOther()
    }
  })

  it('does not serve a grant reorged away below the confirmation depth; re-scans after a reorg under the cursor', async () => {
    const { capsuleId, keyguard, events } = await freshKeyguard({ confirmations: 2 })
    await keyguard.start()
    const provider = chain.anvil.provider
    const mine = async (n: number) => {
      for (let i = 0; i < n; i++) await provider.send('evm_mine', [])
    }
    const before = await chain.anvil.snapshot()
    const lost = await requestAccess(chain, capsuleId, exec.newEphemeral())
    await keyguard.poll() // the grant is 0 blocks deep: not confirmed
    expect(events.some((e) => e.type === 'grant-accepted')).toBe(false)
    await chain.anvil.revert(before)
    // History 2: three empty blocks; the cursor moves onto the first of them.
    const fork = await chain.anvil.snapshot()
    await mine(3)
    await keyguard.poll()
    expect((await keyguard.status()).chain.cursor).not.toBeNull()
    // History 3 replaces the cursor's block: a grant, then enough blocks to confirm it.
    await chain.anvil.revert(fork)
    const kept = await requestAccess(chain, capsuleId, exec.newEphemeral())
    await mine(4)
    await keyguard.poll()
    await until(() => events.some((e) => e.type === 'released' && e.grantId === kept))
    expect(events.some((e) => e.type === 'reorg')).toBe(true)
    expect(events.some((e) => 'grantId' in e && e.grantId === lost)).toBe(false)
  })

  it('counts a log only when a quorum of RPCs returns it: one lying RPC cannot forge a grant', async () => {
    const parts = await keyguardParts()
    cleanups.push(parts.cleanup)
    const capsuleId = await registerCapsule(chain, kgNode)
    await storeKey(parts, capsuleId, randomBytes(32))
    const forgedGrantId = hexlify(randomBytes(32))
    const liar = await lyingProxy(chain.anvil.rpcUrl, (logsParams) =>
      forgedLog(logsParams, capsuleId, forgedGrantId),
    )
    cleanups.push(liar.close)
    const chainId = BigInt(chain.addresses.chainId)
    const run = async (urls: string[], quorum: number) => {
      const seen: GrantWatcherEvent[] = []
      const released: ReleaseEvent[] = []
      const client = ethersChainClient({
        providers: urls.map((u) => createProvider(u, chainId)),
        quorum,
        addresses: chain.addresses,
        chainId,
      })
      const releaser = keyReleaser()({
        ...parts,
        chain: client,
        libp2p: kgNode,
        onEvent: (e) => released.push(e),
      })
      const accepted: string[] = []
      const watcher = grantWatcher({
        dataDir: `${parts.dir}/q${quorum}`,
        confirmations: 0,
        startBlock: chain.addresses.deployBlock,
      })({
        chain: client,
        keyStore: parts.keyStore,
        onGrant: async (log) => {
          accepted.push(log.grantId)
          await releaser.accept(log)
        },
        onEvent: (e) => seen.push(e),
      })
      await watcher.start()
      await watcher.poll()
      await watcher.stop()
      await releaser.stop()
      return { accepted, released }
    }
    // Quorum 2 of 3 (two honest, one liar): the forged log never reaches the releaser.
    const q2 = await run([chain.anvil.rpcUrl, chain.anvil.rpcUrl, liar.url], 2)
    expect(q2.accepted).not.toContain(forgedGrantId)
    // A lone lying RPC gets its log through the watcher, but getGrant (authoritative) refuses it.
    const q1 = await run([liar.url], 1)
    expect(q1.accepted).toContain(forgedGrantId)
    expect(q1.released).toContainEqual({
      type: 'grant-refused',
      grantId: forgedGrantId,
      reason: 'not-found',
    })
  })

  it('does not serve an expired grant', async () => {
    const { capsuleId, keyguard, events } = await freshKeyguard()
    const grantId = await requestAccess(chain, capsuleId, exec.newEphemeral())
    await chain.anvil.increaseTime(700)
    const served = exec.releases.length
    await keyguard.start()
    await keyguard.poll()
    await keyguard.idle()
    expect(refusals(events, grantId)).toEqual(['expired'])
    expect(exec.releases.length).toBe(served)
  })
})

// ---- a second anvil with another chain id, and a lying JSON-RPC proxy ------------------------

let otherStop: (() => Promise<void>) | undefined
async function setupChainOther(): Promise<string> {
  const { startAnvil } = await import('@digicap/contracts/testing')
  const a = await startAnvil({ chainId: 31338 })
  otherStop = () => a.stop()
  return a.rpcUrl
}
async function stopOther() {
  await otherStop?.()
}

function forgedLog(params: unknown, capsuleId: string, grantId: string) {
  const [filter] = params as [{ address: string; fromBlock: string; toBlock: string }]
  const data = AbiCoder.defaultAbiCoder().encode(
    ['bytes32', 'bytes32', 'uint64', 'bool'],
    [hexlify(randomBytes(32)), hexlify(randomBytes(32)), 4_000_000_000n, false],
  )
  return {
    address: filter.address,
    topics: [
      '0x', // the AccessGranted topic, set by the proxy
      grantId,
      capsuleId,
      zeroPadValue(chain.executor.address, 32),
    ],
    data,
    blockNumber: filter.toBlock,
    blockHash: hexlify(randomBytes(32)),
    transactionHash: hexlify(randomBytes(32)),
    transactionIndex: '0x0',
    logIndex: '0x0',
    removed: false,
  }
}

/** A JSON-RPC proxy in front of `upstream` that adds a forged `AccessGranted` log to `eth_getLogs`. */
async function lyingProxy(
  upstream: string,
  forge: (params: unknown) => Record<string, unknown>,
): Promise<RpcProxy> {
  const topic0 = chain.c.accessController.interface.getEvent('AccessGranted')?.topicHash as string
  return startRpcProxy(upstream, (call, result) => {
    if (call.method !== 'eth_getLogs' || !Array.isArray(result)) return result
    const log = forge(call.params)
    ;(log.topics as string[])[0] = topic0
    return [...result, log]
  })
}

export type { Keyguard }
