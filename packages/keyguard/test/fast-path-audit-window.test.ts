/**
 * The keyguard accepts no fast-path request expiring later than the AccessController's
 * `auditWindow` ahead, whatever its own `maxExpirySeconds` (contracts ADR 0006): the audit of a
 * key it released then lands inside the window or not at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'

let w: KeyguardWorld

beforeAll(async () => {
  w = await keyguardWorld({
    keyguard: {
      pollIntervalMs: 200,
      // Longer than the contract's audit window (600 s by default): the window wins.
      fastPath: { enabled: true, maxExpirySeconds: 3600 },
    },
  })
}, 60_000)

afterAll(() => w?.stop())

const signed = (expiry: bigint) => w.signed({ fields: { expiry } })

describe('fast path: the audit window caps the expiry', () => {
  it('refuses a request expiring beyond auditWindow even when maxExpirySeconds allows it', async () => {
    expect(await w.chain.c.accessController.auditWindow()).toBe(600n)
    const now = BigInt(Math.floor(Date.now() / 1000))
    const far = await w.ask(signed(now + 1200n))
    expect(far.status === 'refused' ? [far.reasonCode, far.reason] : far.status).toEqual([
      'expired',
      'too-far',
    ])
    const near = await w.ask(signed(now + 500n))
    expect(near.status).toBe('granted')
  })
})
