/**
 * A chain grant whose capsule had a fast-path release is judged by the chain-grant guard
 * (ADR 0073, 0081), which reads the chain: whether the fast path's audit is confirmed
 * (`grantLogs`) and the overrun count. A read that fails there (an RPC down for a moment) must
 * hold the grant and ask again, not end it: the previous code threw out of the guard, the
 * releaser reported `release-failed` and dropped the grant until a restart, though the RPC was
 * back a second later (review of ADR 0081).
 */
import { getBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChainClient } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { requestAccess, until } from './helpers/world.ts'

let w: KeyguardWorld
let failing = false

beforeAll(async () => {
  w = await keyguardWorld({
    capsules: 2,
    keyguardDialsExecutor: true,
    keyguard: { pollIntervalMs: 100, fastPath: { enabled: true, maxExpirySeconds: 300 } },
    events: ['released', 'grant-refused', 'release-failed', 'grant-held', 'audit-recorded'],
    chainClient: (real: ChainClient) => {
      const c: ChainClient = Object.create(real)
      // The guard's audit lookup asks for one capsule's logs; the watcher asks for all of them.
      c.grantLogs = async (from, to, ids) => {
        if (failing && ids.length === 1) throw new Error('rpc down (fault injection)')
        return real.grantLogs(from, to, ids)
      }
      return c
    },
  })
}, 90_000)

afterAll(() => w?.stop())

describe('the chain-grant guard when the chain cannot be read', () => {
  it('holds the grant while the read fails and serves it once the RPC is back', async () => {
    const capsule = w.capsules[0] as string
    const res = await w.ask(
      w.signed({ capsuleId: capsule, fields: { ephemeralKey: getBytes(w.exec.newEphemeral()) } }),
    )
    expect(res.status).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'audit-recorded'), 20_000)
    failing = true
    const grantId = await requestAccess(w.chain, capsule, w.exec.newEphemeral())
    const of = (type: string) =>
      w.events.filter((e) => e.type === type && 'grantId' in e && e.grantId === grantId)
    await until(() => of('grant-held').length > 0 || of('release-failed').length > 0, 20_000)
    expect(of('release-failed')).toEqual([])
    expect(of('released')).toEqual([])
    failing = false
    await until(() => of('released').length > 0, 30_000)
    expect(of('release-failed')).toEqual([])
    expect(of('grant-refused')).toEqual([])
  }, 90_000)
})
