import { encodeHpkeSealed, generateX25519KeyPair, hpkeSeal } from '@digicap/capsule-core'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { keyReleaseProtocol, request } from '@digicap/protocol'
import { hexlify, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReleaseInbox, type ReleaseInboxEvent } from '../src/index.ts'

let a: DigicapNode
let b: DigicapNode
let attacker: DigicapNode

beforeAll(async () => {
  ;[a, b, attacker] = await Promise.all([
    createDigicapNode(),
    createDigicapNode(),
    createDigicapNode(),
  ])
  await b.libp2p.dial(a.libp2p.getMultiaddrs()[0]!)
  await attacker.libp2p.dial(a.libp2p.getMultiaddrs()[0]!)
})

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), attacker?.stop()])
})

describe('release inbox (real libp2p)', () => {
  it('matches a release to the waiting run by its ephemeral key, even before the grant id is known', async () => {
    const events: ReleaseInboxEvent[] = []
    const inbox = await createReleaseInbox(a.libp2p, (e) => events.push(e))
    const from = b.libp2p.peerId
    const keys = generateX25519KeyPair()
    const capsuleId = randomBytes(32)
    const grantId = randomBytes(32)
    const dataKey = randomBytes(32)
    const waiting = inbox.expect(capsuleId, keys, { deadline: Date.now() + 5000, from })
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

  it('refuses a release from another peer or with a key the header does not commit to, and keeps waiting for the real one', async () => {
    const events: ReleaseInboxEvent[] = []
    const inbox = await createReleaseInbox(a.libp2p, (e) => events.push(e))
    const keys = generateX25519KeyPair()
    const capsuleId = randomBytes(32)
    const grantId = randomBytes(32)
    const dataKey = randomBytes(32)
    const verifyKey = (k: Uint8Array): boolean => Buffer.from(k).equals(Buffer.from(dataKey))
    const waiting = inbox.expect(capsuleId, keys, {
      deadline: Date.now() + 10_000,
      from: b.libp2p.peerId,
      verifyKey,
    })
    // The ephemeral key and grant id are public: anyone can seal a junk key that opens.
    const junk = async (node: DigicapNode) =>
      request(node.libp2p, a.libp2p.peerId, keyReleaseProtocol, {
        grantId,
        capsuleId,
        hpke: encodeHpkeSealed(await hpkeSeal(keys.publicKey, randomBytes(32), grantId)),
        fastPath: false,
      })
    expect((await junk(attacker)).status).toBe('unknown-grant')
    // the real release still lands
    const ack = await request(b.libp2p, a.libp2p.peerId, keyReleaseProtocol, {
      grantId,
      capsuleId,
      hpke: encodeHpkeSealed(await hpkeSeal(keys.publicKey, dataKey, grantId)),
      fastPath: false,
    })
    expect(ack.status).toBe('ok')
    expect((await waiting).dataKey).toEqual(dataKey)
    // the keyguard peer itself releasing a key the header does not commit to: open-failed,
    // and the run fails at once (no better release will come)
    const keys2 = generateX25519KeyPair()
    const lied = inbox.expect(capsuleId, keys2, {
      deadline: Date.now() + 10_000,
      from: b.libp2p.peerId,
      verifyKey,
    })
    const liedCode = lied.then(
      () => 'resolved',
      (err: { code: string }) => err.code,
    )
    const lie = await request(b.libp2p, a.libp2p.peerId, keyReleaseProtocol, {
      grantId,
      capsuleId,
      hpke: encodeHpkeSealed(await hpkeSeal(keys2.publicKey, randomBytes(32), grantId)),
      fastPath: false,
    })
    expect(lie.status).toBe('open-failed')
    expect(await liedCode).toBe('KEY_RELEASE_INVALID')
    expect(events).toEqual([
      { type: 'release-rejected', grantId: hexlify(grantId), reason: 'wrong-peer' },
      { type: 'release-accepted', grantId: hexlify(grantId) },
      { type: 'release-rejected', grantId: hexlify(grantId), reason: 'key-mismatch' },
    ])
    await inbox.stop()
  })

  it('gives up at the deadline, on abort, and on stop, with KEY_RELEASE_TIMEOUT', async () => {
    const inbox = await createReleaseInbox(a.libp2p)
    const from = b.libp2p.peerId
    const keys = generateX25519KeyPair()
    const late = inbox.expect(randomBytes(32), keys, { deadline: Date.now() + 50, from })
    await expect(late).rejects.toMatchObject({ code: 'KEY_RELEASE_TIMEOUT' })
    const ac = new AbortController()
    const aborted = inbox.expect(randomBytes(32), keys, {
      deadline: Date.now() + 60_000,
      from,
      signal: ac.signal,
    })
    ac.abort()
    await expect(aborted).rejects.toMatchObject({ code: 'KEY_RELEASE_TIMEOUT' })
    const stopped = inbox.expect(randomBytes(32), keys, { deadline: Date.now() + 60_000, from })
    await inbox.stop()
    await expect(stopped).rejects.toMatchObject({ code: 'KEY_RELEASE_TIMEOUT' })
  })
})
