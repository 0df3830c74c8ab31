import { createProvider, deployDigicap } from '@digicap/contracts'
import { type RpcProxy, startRpcProxy } from '@digicap/contracts/testing'
import { AbiCoder, hexlify, randomBytes, toQuantity, zeroPadValue } from 'ethers'
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
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import {
  chainClientFor,
  type KeyguardParts,
  keyguardParts,
  quietLogger,
  registerCapsule,
  requestAccess,
  storeKey,
  until,
} from './helpers/world.ts'

let w: KeyguardWorld

beforeAll(async () => {
  // Chain path: every test builds its own keyguard on the world's node (freshKeyguard).
  w = await keyguardWorld({ capsules: 0, keyguard: false, keyguardDialsExecutor: true })
}, 60_000)

afterAll(() => w?.stop())

/** A keyguard over fresh parts and a fresh capsule holding `dataKey`. */
async function freshKeyguard(
  options: { confirmations?: number; parts?: KeyguardParts; capsuleId?: string } = {},
) {
  const parts = options.parts ?? (await keyguardParts())
  const capsuleId = options.capsuleId ?? (await registerCapsule(w.chain, w.kgNode))
  const dataKey = randomBytes(32)
  if (options.capsuleId === undefined) await storeKey(parts, capsuleId, dataKey)
  const events: KeyguardEvent[] = []
  const keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: options.confirmations ?? 0,
    startBlock: w.chain.addresses.deployBlock,
    pollIntervalMs: 50,
    releaseAttemptTimeoutMs: 2000,
  })({
    sealer: parts.sealer,
    keyStore: parts.keyStore,
    journal: parts.journal,
    chain: chainClientFor(w.chain),
    libp2p: w.kgNode,
    logger: quietLogger,
  })
  for (const type of ['released', 'grant-refused', 'grant-accepted', 'reorg', 'release-failed']) {
    keyguard.events.addEventListener(type, (e) => events.push((e as CustomEvent).detail))
  }
  w.defer('keyguard', async () => {
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
    const eph = w.exec.newEphemeral()
    const grantId = await requestAccess(w.chain, capsuleId, eph)
    await until(() => events.some((e) => e.type === 'released' && e.grantId === grantId))
    expect(w.exec.received.get(grantId)).toEqual(dataKey)
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
    const grantId = await requestAccess(w.chain, capsuleId, w.exec.newEphemeral())
    await until(() => events.some((e) => e.type === 'released' && e.grantId === grantId))
    const served = w.exec.releases.length
    await keyguard.stop()
    // A second keyguard on the same journal, with its cursor gone: it sees the log again.
    const { rm } = await import('node:fs/promises')
    await rm(`${parts.dir}/grant-cursor.json`)
    const again = await freshKeyguard({ parts, capsuleId })
    await again.keyguard.start()
    await again.keyguard.poll()
    await again.keyguard.idle()
    expect(refusals(again.events, grantId)).toEqual(['replayed'])
    expect(w.exec.releases.length).toBe(served)
  })

  it('closes the journal entry (refused) when the executor cannot open the release', async () => {
    const { parts, capsuleId, keyguard, events } = await freshKeyguard()
    await keyguard.start()
    const grantId = await requestAccess(w.chain, capsuleId, hexlify(randomBytes(32))) // no private key
    await until(() => events.some((e) => e.type === 'release-failed' && e.grantId === grantId))
    expect(events.find((e) => e.type === 'release-failed')).toEqual({
      type: 'release-failed',
      grantId,
      reason: 'open-failed',
    })
    // Declined for good: no restart sends the same ciphertext again (release-declined.test.ts).
    expect(await parts.journal.get(grantId)).toMatchObject({
      state: 'refused',
      reason: 'executor open-failed',
    })
    expect((await keyguard.status()).releases.pending).toBe(0)
  })

  it('ignores a grant from a foreign AccessController for the same capsule id', async () => {
    const { capsuleId, keyguard, events } = await freshKeyguard()
    await keyguard.start()
    const foreign = await deployDigicap(w.chain.deployer, {
      minStake: 10n ** 16n,
      grantWindow: 600,
      disputeWindow: 3600,
      unbondingDelay: 3600,
    })
    const { connectDigicap } = await import('@digicap/contracts')
    const fc = connectDigicap(foreign, w.chain.deployer)
    await (
      await fc.nodeRegistry
        .connect(w.chain.executor)
        .register(w.exec.node.peerId.toMultihash().bytes, hexlify(randomBytes(32)), 1, {
          value: 10n ** 16n,
        })
    ).wait()
    await (
      await fc.capsuleRegistry
        .connect(w.chain.owner)
        .register(
          capsuleId,
          w.chain.policy,
          'bafy',
          hexlify(randomBytes(32)),
          w.kgNode.peerId.toMultihash().bytes,
          hexlify(randomBytes(32)),
        )
    ).wait()
    const tx = await fc.accessController
      .connect(w.chain.executor)
      .requestAccess(capsuleId, w.exec.newEphemeral(), w.chain.measurement, '0x')
    await tx.wait()
    const served = w.exec.releases.length
    await keyguard.poll()
    await keyguard.idle()
    expect(events.filter((e) => e.type === 'grant-accepted')).toEqual([])
    expect(w.exec.releases.length).toBe(served)
    // The real controller's grant for the same capsule is still served.
    const grantId = await requestAccess(w.chain, capsuleId, w.exec.newEphemeral())
    await until(() => events.some((e) => e.type === 'released' && e.grantId === grantId))
  })

  it('refuses to start on the wrong chain (eth_chainId mismatch)', async () => {
    const other = await setupChainOther()
    try {
      const parts = await keyguardParts()
      w.defer('data dir', parts.cleanup)
      const client = ethersChainClient({
        providers: [createProvider(other, 31337n)],
        addresses: w.chain.addresses,
        chainId: 31337n,
      })
      const keyguard = createKeyguard({ dataDir: parts.dir, confirmations: 0 })({
        sealer: parts.sealer,
        keyStore: parts.keyStore,
        journal: parts.journal,
        chain: client,
        libp2p: w.kgNode,
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
    const provider = w.chain.anvil.provider
    const mine = async (n: number) => {
      for (let i = 0; i < n; i++) await provider.send('evm_mine', [])
    }
    const before = await w.chain.anvil.snapshot()
    const lost = await requestAccess(w.chain, capsuleId, w.exec.newEphemeral())
    await keyguard.poll() // the grant is 0 blocks deep: not confirmed
    expect(events.some((e) => e.type === 'grant-accepted')).toBe(false)
    await w.chain.anvil.revert(before)
    // History 2: three empty blocks; the cursor moves onto the first of them.
    const fork = await w.chain.anvil.snapshot()
    await mine(3)
    await keyguard.poll()
    expect((await keyguard.status()).chain.cursor).not.toBeNull()
    // History 3 replaces the cursor's block: a grant, then enough blocks to confirm it.
    await w.chain.anvil.revert(fork)
    const kept = await requestAccess(w.chain, capsuleId, w.exec.newEphemeral())
    await mine(4)
    await keyguard.poll()
    await until(() => events.some((e) => e.type === 'released' && e.grantId === kept))
    expect(events.some((e) => e.type === 'reorg')).toBe(true)
    expect(events.some((e) => 'grantId' in e && e.grantId === lost)).toBe(false)
  })

  it('counts a log only when a quorum of RPCs returns it: one lying RPC cannot forge a grant', async () => {
    const parts = await keyguardParts()
    w.defer('data dir', parts.cleanup)
    const capsuleId = await registerCapsule(w.chain, w.kgNode)
    await storeKey(parts, capsuleId, randomBytes(32))
    const forgedGrantId = hexlify(randomBytes(32))
    const liar = await lyingProxy(w.chain.anvil.rpcUrl, (filter, at) =>
      forgedLog(filter, at, capsuleId, forgedGrantId),
    )
    w.defer('lying RPC', liar.close)
    const chainId = BigInt(w.chain.addresses.chainId)
    const run = async (urls: string[], quorum: number) => {
      const seen: GrantWatcherEvent[] = []
      const released: ReleaseEvent[] = []
      const client = ethersChainClient({
        providers: urls.map((u) => createProvider(u, chainId)),
        quorum,
        addresses: w.chain.addresses,
        chainId,
      })
      const releaser = keyReleaser()({
        ...parts,
        chain: client,
        libp2p: w.kgNode,
        onEvent: (e) => released.push(e),
      })
      const accepted: string[] = []
      const watcher = grantWatcher({
        dataDir: `${parts.dir}/q${quorum}`,
        confirmations: 0,
        startBlock: w.chain.addresses.deployBlock,
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
    const q2 = await run([w.chain.anvil.rpcUrl, w.chain.anvil.rpcUrl, liar.url], 2)
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
    const grantId = await requestAccess(w.chain, capsuleId, w.exec.newEphemeral())
    await w.chain.anvil.increaseTime(700)
    const served = w.exec.releases.length
    await keyguard.start()
    await keyguard.poll()
    await keyguard.idle()
    expect(refusals(events, grantId)).toEqual(['expired'])
    expect(w.exec.releases.length).toBe(served)
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

function forgedLog(
  filter: { address: string },
  at: { blockNumber: string; blockHash: string },
  capsuleId: string,
  grantId: string,
) {
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
      zeroPadValue(w.chain.executor.address, 32),
    ],
    data,
    ...at,
    transactionHash: hexlify(randomBytes(32)),
    transactionIndex: '0x0',
    logIndex: '0x0',
    removed: false,
  }
}

/**
 * A JSON-RPC proxy in front of `upstream` that adds a forged `AccessGranted` log to `eth_getLogs`,
 * in the range's last block, or in the block asked by hash (the form the last blocks are read in).
 */
async function lyingProxy(
  upstream: string,
  forge: (
    filter: { address: string },
    at: { blockNumber: string; blockHash: string },
  ) => Record<string, unknown>,
): Promise<RpcProxy> {
  const topic0 = w.chain.c.accessController.interface.getEvent('AccessGranted')?.topicHash as string
  return startRpcProxy(upstream, async (call, result) => {
    if (call.method !== 'eth_getLogs' || !Array.isArray(result)) return result
    const [filter] = call.params as [{ address: string; toBlock?: string; blockHash?: string }]
    const block = await w.chain.anvil.provider.getBlock(filter.blockHash ?? Number(filter.toBlock))
    if (block?.hash == null) return result
    const log = forge(filter, { blockNumber: toQuantity(block.number), blockHash: block.hash })
    ;(log.topics as string[])[0] = topic0
    return [...result, log]
  })
}

export type { Keyguard }
