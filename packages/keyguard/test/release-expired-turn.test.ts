/**
 * A chain grant's turn that comes after the grant expired unwraps and sends nothing: a grant
 * held past its expiry (the fast path's audit pending, ADR 0073) is refused `expired` at its next
 * look, and a push retried past it gives up. The faults are injected: a chain that answers this
 * grant and the clock, a run guard that holds then serves, an executor that never answers.
 */
import { randomBytes } from 'node:crypto'
import { generateX25519KeyPair } from '@digicap/capsule-core'
import { getAddress, hexlify, Wallet } from 'ethers'
import { afterAll, describe, expect, it } from 'vitest'
import { keyReleaser, type ReleaseEvent } from '../src/release/key-releaser.ts'
import { type KeyguardParts, keyguardParts, storeKey, TEST_OWNER, until } from './helpers/world.ts'

/** An identity-multihash Ed25519 peer id: the executor's registered id, never reachable. */
const PEER = new Uint8Array([0, 36, 8, 1, 18, 32, ...randomBytes(32)])
const parts: KeyguardParts[] = []
afterAll(async () => {
  for (const p of parts) await p.cleanup()
})

async function releaser(expiresIn: number, guard: () => 'serve' | 'hold') {
  const p = await keyguardParts()
  parts.push(p)
  const capsuleId = hexlify(randomBytes(32))
  await storeKey(p, capsuleId, new Uint8Array(32).fill(7))
  const now = () => BigInt(Math.floor(Date.now() / 1000))
  const grant = {
    grantId: hexlify(randomBytes(32)),
    capsuleId,
    executor: getAddress(Wallet.createRandom().address),
    ephemeralKey: hexlify(generateX25519KeyPair().publicKey),
    expiresAt: now() + BigInt(expiresIn),
    fastPath: false,
    runIndex: 0n,
  }
  const dials: number[] = []
  const events: ReleaseEvent[] = []
  const chain = {
    getGrant: async () => grant,
    now: async () => now(),
    nodePeerId: async () => PEER,
    attestationRequired: async () => false,
    capsuleRecord: async () => ({
      owner: TEST_OWNER,
      policy: getAddress(hexlify(randomBytes(20))),
      revoked: false,
    }),
  } as never
  const libp2p = {
    dialProtocol: async () => {
      dials.push(Date.now())
      throw Object.assign(new Error('unreachable (injected)'), { code: 'E_UNREACHABLE' })
    },
  } as never
  const r = keyReleaser({ verdictPollMs: 2500, retryBaseMs: 50, attemptTimeoutMs: 200 })({
    ...p,
    chain,
    libp2p,
    runGuard: async () => guard(),
    onEvent: (e) => events.push(e),
  })
  const log = {
    grantId: grant.grantId,
    capsuleId: grant.capsuleId,
    executor: grant.executor,
    ephemeralKey: grant.ephemeralKey,
  } as never
  return { r, grant, dials, events, log }
}

describe('a key releaser turn after the grant expired', () => {
  it('a grant held across its expiry is refused `expired` at its next look: nothing unwrapped, nothing sent', async () => {
    let verdict: 'serve' | 'hold' = 'hold'
    const { r, grant, dials, events, log } = await releaser(2, () => verdict)
    expect(await r.accept(log)).toBe('queued')
    await new Promise((res) => setTimeout(res, 200))
    verdict = 'serve' // the audit landed: the next look (2.5 s later) comes after the expiry
    // Its refusal is final: stopped once it is out, not after a fixed 4 s.
    await until(() => events.some((e) => e.type === 'grant-refused'), 10_000)
    await r.stop()
    expect(events.map((e) => e.type)).toContain('grant-held')
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'grant-refused', grantId: grant.grantId, reason: 'expired' }),
    )
    expect(events.some((e) => e.type === 'unwrapped')).toBe(false)
    expect(dials).toEqual([])
  }, 20_000)

  it('pushes to an executor that never answers stop at the expiry: none is sent after it', async () => {
    const { r, grant, dials, events, log } = await releaser(2, () => 'serve')
    expect(await r.accept(log)).toBe('queued')
    await new Promise((res) => setTimeout(res, 3500))
    await r.stop()
    expect(dials.length).toBeGreaterThan(0) // it tried while the grant was valid
    const expiredAt = Number(grant.expiresAt) * 1000
    expect(dials.filter((t) => t >= expiredAt)).toEqual([])
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'release-failed', grantId: grant.grantId }),
    )
  }, 20_000)
})
