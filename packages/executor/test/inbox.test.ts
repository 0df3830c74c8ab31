import { encodeHpkeSealed, generateX25519KeyPair, hpkeSeal } from '@digicap/capsule-core'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { keyReleaseProtocol, request } from '@digicap/protocol'
import { randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReleaseInbox, type ReleaseInboxEvent } from '../src/index.ts'

let a: DigicapNode
let b: DigicapNode

beforeAll(async () => {
  ;[a, b] = await Promise.all([createDigicapNode(), createDigicapNode()])
  await b.libp2p.dial(a.libp2p.getMultiaddrs()[0]!)
})

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()])
})

describe('release inbox (real libp2p)', () => {
  it('matches a release to the waiting run by its ephemeral key, even before the grant id is known', async () => {
    const events: ReleaseInboxEvent[] = []
    const inbox = await createReleaseInbox(a.libp2p, (e) => events.push(e))
    const keys = generateX25519KeyPair()
    const capsuleId = randomBytes(32)
    const grantId = randomBytes(32)
    const dataKey = randomBytes(32)
    const waiting = inbox.expect(capsuleId, keys, { deadline: Date.now() + 5000 })
    // a release for the same capsule sealed to another key is not ours
    const other = generateX25519KeyPair()
    const foreign = await request(b.libp2p, a.libp2p.peerId, keyReleaseProtocol, {
      grantId,
      capsuleId,
      hpke: encodeHpkeSealed(await hpkeSeal(other.publicKey, dataKey, grantId)),
      fastPath: false,
    })
    expect(foreign.status).toBe('unknown-grant')
    const ack = await request(b.libp2p, a.libp2p.peerId, keyReleaseProtocol, {
      grantId,
      capsuleId,
      hpke: encodeHpkeSealed(await hpkeSeal(keys.publicKey, dataKey, grantId)),
      fastPath: false,
    })
    expect(ack.status).toBe('ok')
    const got = await waiting
    expect(got.dataKey).toEqual(dataKey)
    expect(got.grantId).toEqual(grantId)
    // replaying the same release: nothing waits for it any more
    const replay = await request(b.libp2p, a.libp2p.peerId, keyReleaseProtocol, {
      grantId,
      capsuleId,
      hpke: encodeHpkeSealed(await hpkeSeal(keys.publicKey, dataKey, grantId)),
      fastPath: false,
    })
    expect(replay.status).toBe('unknown-grant')
    expect(events.map((e) => e.type)).toEqual([
      'release-unknown',
      'release-accepted',
      'release-unknown',
    ])
    await inbox.stop()
  })

  it('gives up at the deadline, on abort, and on stop, with KEY_RELEASE_TIMEOUT', async () => {
    const inbox = await createReleaseInbox(a.libp2p)
    const keys = generateX25519KeyPair()
    const late = inbox.expect(randomBytes(32), keys, { deadline: Date.now() + 50 })
    await expect(late).rejects.toMatchObject({ code: 'KEY_RELEASE_TIMEOUT' })
    const ac = new AbortController()
    const aborted = inbox.expect(randomBytes(32), keys, {
      deadline: Date.now() + 60_000,
      signal: ac.signal,
    })
    ac.abort()
    await expect(aborted).rejects.toMatchObject({ code: 'KEY_RELEASE_TIMEOUT' })
    const stopped = inbox.expect(randomBytes(32), keys, { deadline: Date.now() + 60_000 })
    await inbox.stop()
    await expect(stopped).rejects.toMatchObject({ code: 'KEY_RELEASE_TIMEOUT' })
  })
})
