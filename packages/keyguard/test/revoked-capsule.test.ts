/**
 * A revoked capsule's key is not released (ADR 0071), on anvil + libp2p: a grant made before the
 * owner's `revoke()` (an executor that front-ran it, or a keyguard that was behind) is refused
 * `revoked` and journaled as refused, and a push waiting for its next attempt is not sent again
 * once the capsule is revoked. On the previous code the chain path never read `revoked` and
 * released the key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { requestAccess, send, until } from './helpers/world.ts'

let w: KeyguardWorld

beforeAll(async () => {
  w = await keyguardWorld({
    capsules: 2,
    keyguardDialsExecutor: true,
    keyguard: { pollIntervalMs: 200, releaseAttemptTimeoutMs: 1000 },
    start: false,
    events: ['grant-accepted', 'released', 'grant-refused'],
  })
}, 90_000)

afterAll(() => w?.stop())

const revoke = (capsuleId: string) =>
  send(w.chain.c.capsuleRegistry.connect(w.chain.owner).revoke(capsuleId))
const eventOf = (type: string, grantId: string) =>
  w.events.find((e) => e.type === type && (e as { grantId: string }).grantId === grantId) as
    | { reason?: string; detail?: string }
    | undefined

describe('revoked capsules', () => {
  it('a grant made before revoke() is refused revoked, journaled, nothing released', async () => {
    const capsuleId = w.capsules[0] as string
    const grantId = await requestAccess(w.chain, capsuleId, w.exec.newEphemeral())
    await revoke(capsuleId)
    await w.keyguard.start()
    await until(() => eventOf('grant-refused', grantId) !== undefined, 15_000)
    expect(eventOf('grant-refused', grantId)).toMatchObject({ reason: 'revoked' })
    expect((await w.parts.journal.get(grantId))?.state).toBe('refused')
    expect(w.exec.received.has(grantId)).toBe(false)
    expect(w.exec.releases).toEqual([])
  }, 60_000)

  it('a push waiting for its next attempt is not sent again after revoke()', async () => {
    const capsuleId = w.capsules[1] as string
    w.exec.beforeAck = () => new Promise(() => {}) // reads, never answers: attempts time out
    const grantId = await requestAccess(w.chain, capsuleId, w.exec.newEphemeral())
    await until(() => w.exec.releases.length >= 1, 15_000)
    await revoke(capsuleId)
    w.exec.beforeAck = undefined // would now open and acknowledge
    await until(() => eventOf('grant-refused', grantId) !== undefined, 20_000)
    expect(eventOf('grant-refused', grantId)).toMatchObject({ reason: 'revoked' })
    const pushes = w.exec.releases.length
    await new Promise((r) => setTimeout(r, 3000))
    expect(w.exec.releases.length).toBe(pushes)
    expect(w.exec.received.has(grantId)).toBe(false)
    expect(eventOf('released', grantId)).toBeUndefined()
  }, 60_000)
})
