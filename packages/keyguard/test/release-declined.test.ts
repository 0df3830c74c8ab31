/**
 * An executor that answers a key-release push with a non-`ok` ack (`open-failed`,
 * `unknown-grant`) declined it for good: the same ciphertext cannot open later. The grant is
 * closed in the journal (refused, `executor <status>`), so a restart does not send it again.
 * On the previous code it stayed `begun` and every restart re-sent it. Anvil + libp2p.
 */
import { generateX25519KeyPair } from '@digicap/capsule-core'
import { hexlify } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { requestAccess, until } from './helpers/world.ts'

let w: KeyguardWorld

beforeAll(async () => {
  w = await keyguardWorld({
    keyguardDialsExecutor: true,
    keyguard: { pollIntervalMs: 200 },
    events: ['grant-accepted', 'released', 'release-failed'],
  })
}, 90_000)

afterAll(() => w?.stop())

describe('chain path: a declined release is closed', () => {
  it('open-failed closes the grant in the journal; a restart does not send it again', async () => {
    // An ephemeral key whose private half the executor side does not hold: it answers open-failed.
    const stranger = hexlify(generateX25519KeyPair().publicKey)
    const grantId = await requestAccess(w.chain, w.capsuleId, stranger)
    await until(
      () =>
        w.events.some(
          (e) => e.type === 'release-failed' && (e as { grantId: string }).grantId === grantId,
        ),
      15_000,
    )
    expect(
      w.events.find(
        (e) => e.type === 'release-failed' && (e as { grantId: string }).grantId === grantId,
      ),
    ).toMatchObject({ reason: 'open-failed' })
    expect(await w.parts.journal.get(grantId)).toMatchObject({
      state: 'refused',
      reason: 'executor open-failed',
    })
    const pushes = w.exec.releases.length
    await w.keyguard.stop()
    await w.keyguard.start()
    await w.keyguard.idle()
    await new Promise((r) => setTimeout(r, 1000))
    expect(w.exec.releases.length).toBe(pushes)
    expect((await w.parts.journal.pending()).map((e) => e.grantId)).not.toContain(grantId)
  }, 60_000)
})
