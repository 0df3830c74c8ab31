/**
 * ADR 0082: with `finality: 'finalized'` a grant counts only once its block is at or below the
 * chain's `finalized` block, whatever `confirmations` says (real anvil: its `finalized` block is
 * 64 below the head).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ethersChainClient, grantWatcher, KeyguardStateError } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor, keyguardParts, requestAccess } from './helpers/world.ts'

let w: KeyguardWorld

beforeAll(async () => {
  w = await keyguardWorld({ keyguard: false })
}, 60_000)

afterAll(() => w?.stop())

const mine = (n: number) => w.chain.anvil.provider.send('anvil_mine', [`0x${n.toString(16)}`])

describe('grant watcher finality (ADR 0082)', () => {
  it('hands a grant over only once the chain calls its block finalized', async () => {
    const parts = await keyguardParts()
    w.defer('data dir', parts.cleanup)
    const handed: string[] = []
    const watcher = grantWatcher({
      dataDir: parts.dir,
      confirmations: 2,
      finality: 'finalized',
      startBlock: w.chain.addresses.deployBlock,
      pollIntervalMs: 60_000,
    })({
      chain: chainClientFor(w.chain),
      keyStore: w.parts.keyStore,
      onGrant: async (log) => {
        handed.push(log.grantId)
      },
    })
    await watcher.start()
    const grantId = await requestAccess(w.chain, w.capsuleId, w.exec.newEphemeral())
    const grantBlock = await w.chain.anvil.provider.getBlockNumber()
    // Ten blocks deep: past `confirmations`, not finalized.
    await mine(10)
    await watcher.poll()
    expect(handed).not.toContain(grantId)
    expect(watcher.cursor()?.number ?? 0).toBeLessThan(grantBlock)
    await mine(64)
    await watcher.poll()
    await watcher.stop()
    expect(handed).toEqual([grantId])
  }, 60_000)

  it('refuses finality on a chain client that cannot read block tags (typed error)', () => {
    const real = chainClientFor(w.chain)
    const blind = Object.create(real)
    blind.taggedBlock = undefined
    const build = () =>
      grantWatcher({ dataDir: '/nonexistent', confirmations: 0, finality: 'safe' })({
        chain: blind,
        keyStore: w.parts.keyStore,
        onGrant: async () => {},
      })
    expect(build).toThrow(KeyguardStateError)
    expect(build).toThrow(/cannot read the safe block/)
    // And an unknown finality word.
    expect(() =>
      grantWatcher({ dataDir: '/nonexistent', confirmations: 0, finality: 'soon' as never })({
        chain: ethersChainClient({
          providers: [w.chain.anvil.provider],
          addresses: w.chain.addresses,
          chainId: BigInt(w.chain.addresses.chainId),
        }),
        keyStore: w.parts.keyStore,
        onGrant: async () => {},
      }),
    ).toThrow(/finality must be latest, safe or finalized/)
  })
})
