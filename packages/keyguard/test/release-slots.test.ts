/**
 * One executor cannot stall the chain path's releases (ADR 0072), on anvil + libp2p. A registered
 * executor makes `maxConcurrentReleases` (4) cheap chain-path grants and never acknowledges the
 * key-release push (a slow reader). Each push times out and is retried with backoff until its
 * grant expires. On the previous code each retrying grant kept its slot the whole time, so an
 * honest executor's grant confirmed afterwards waited behind them (not served in 25 s). Now a
 * slot is given back between attempts and an executor has at most one push at a time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { registerExecutor, requestAccess, until } from './helpers/world.ts'

let w: KeyguardWorld

beforeAll(async () => {
  w = await keyguardWorld({
    executors: 2,
    keyguardDialsExecutor: true,
    keyguard: { pollIntervalMs: 200, releaseAttemptTimeoutMs: 4000 },
    events: ['grant-accepted', 'released', 'release-failed'],
    prepare: async (world) => {
      const attacker = world.executors[1]
      if (attacker === undefined) throw new Error('no attacker side')
      await registerExecutor(world.chain, world.chain.other, attacker.node)
    },
  })
}, 90_000)

afterAll(() => w?.stop())

describe('chain path: release slots are shared fairly', () => {
  it("a mute executor's 4 grants do not delay an honest executor's release", async () => {
    const attacker = w.executors[1]
    if (attacker === undefined) throw new Error('no attacker')
    // Reads each push and never answers: every attempt times out (4 s here).
    attacker.beforeAck = () => new Promise(() => {})
    const theirs: string[] = []
    for (let i = 0; i < 4; i++) {
      theirs.push(await requestAccess(w.chain, w.capsuleId, attacker.newEphemeral(), w.chain.other))
    }
    await until(() => attacker.releases.length >= 1, 15_000)
    // One push at a time to one executor: its other grants wait for the first attempt's timeout.
    await new Promise((r) => setTimeout(r, 1500))
    expect(attacker.releases.length).toBe(1)
    const t0 = Date.now()
    const honest = await requestAccess(w.chain, w.capsuleId, w.exec.newEphemeral())
    await until(
      () => w.exec.received.has(honest),
      10_000,
      () => `${Date.now() - t0} ms`,
    )
    expect(Date.now() - t0).toBeLessThan(10_000)
    // The attacker's grants are still being tried, one push at a time, none released.
    await until(() => attacker.releases.length >= 4, 30_000)
    expect(
      w.events.filter(
        (e) => e.type === 'released' && theirs.includes((e as { grantId: string }).grantId),
      ),
    ).toEqual([])
  }, 120_000)
})
