/**
 * docs/adr/0082 amendment 2: a `finality` tag whose block trails the head by more than half the
 * AccessController's `grantWindow` (600 s here) would let every chain grant expire before the
 * keyguard sees it. On a real anvil, whose `finalized` block is 64 below the head, blocks 12 s
 * apart (`anvil_mine` with an interval, as on Ethereum) make the tag lag ~768 s: `start()` must
 * refuse with `FinalityLagError` (the previous code started, then refused every grant `expired`).
 * Blocks 1 s apart make it ~64 s: it starts; when 12 s blocks come back while it runs, it raises
 * `finality-lag` (and `status()` shows it), and clears it once the lag is back under the limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createKeyguard,
  FinalityLagError,
  type Keyguard,
  type KeyguardEvent,
} from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor, keyguardParts, quietLogger, until } from './helpers/world.ts'

let w: KeyguardWorld

beforeAll(async () => {
  w = await keyguardWorld({ keyguard: false })
}, 60_000)

afterAll(() => w?.stop())

/** `n` blocks `interval` seconds apart. */
const mine = (n: number, interval: number) =>
  w.chain.anvil.provider.send('anvil_mine', [`0x${n.toString(16)}`, `0x${interval.toString(16)}`])

async function keyguard(events: KeyguardEvent[]): Promise<Keyguard> {
  const parts = await keyguardParts()
  w.defer('data dir', parts.cleanup)
  const kg = createKeyguard({
    dataDir: parts.dir,
    confirmations: 2,
    finality: 'finalized',
    startBlock: w.chain.addresses.deployBlock,
    pollIntervalMs: 200,
    finalityCheckMs: 100,
  })({
    sealer: parts.sealer,
    keyStore: parts.keyStore,
    journal: parts.journal,
    chain: chainClientFor(w.chain),
    libp2p: w.kgNode,
    logger: quietLogger,
  })
  kg.events.addEventListener('finality-lag', (e) =>
    events.push((e as CustomEvent<KeyguardEvent>).detail),
  )
  w.defer('keyguard', () => kg.stop())
  return kg
}

describe('finality lag against the grant window (docs/adr/0082 amendment 2)', () => {
  it('refuses to start on a tag that trails by more than half the grant window', async () => {
    await mine(70, 12)
    const kg = await keyguard([])
    const err = await kg.start().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(FinalityLagError)
    const e = err as FinalityLagError
    expect(e.code).toBe('FINALITY_LAG')
    expect(e.details).toMatchObject({ finality: 'finalized', grantWindowSeconds: 600 })
    expect(e.details.lagSeconds).toBeGreaterThan(700)
    expect(e.details.limitSeconds).toBe(300)
    expect(e.hint).toMatch(/finality latest/)
    expect((await kg.status()).running).toBe(false)
  }, 60_000)

  it('starts when the lag leaves enough of the window, and alerts when it grows while running', async () => {
    await mine(70, 1)
    const events: KeyguardEvent[] = []
    const kg = await keyguard(events)
    await kg.start()
    expect((await kg.status()).chain.finalityLag).toMatchObject({ lagging: false })
    await mine(70, 12)
    await until(() => events.some((e) => e.type === 'finality-lag' && e.lagging), 20_000)
    expect((await kg.status()).chain.finalityLag).toMatchObject({ lagging: true })
    expect(events[0]).toMatchObject({ type: 'finality-lag', lagging: true, limitSeconds: 300 })
    await mine(70, 1)
    await until(() => events.some((e) => e.type === 'finality-lag' && !e.lagging), 20_000)
    await kg.stop()
  }, 60_000)
})
