import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { encode } from 'cborg'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  announceCapsule,
  CAPSULE_TOPIC,
  type CapsuleAnnouncement,
  createDigicapNode,
  decodeCapsuleAnnouncement,
  encodeCapsuleAnnouncement,
  MAX_ANNOUNCEMENT_BYTES,
  subscribeCapsuleAnnouncements,
} from '../src/index.ts'

const PEER = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
const ann: CapsuleAnnouncement = {
  capsuleId: `0x${'ab'.repeat(32)}`,
  cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
  owner: `0x${'11'.repeat(20)}`,
  registry: `0x${'22'.repeat(20)}`,
  chainId: 31337,
  keyguardPeer: PEER,
}
const CODES = ['ANNOUNCEMENT_FORMAT', 'ANNOUNCEMENT_VERSION', 'ANNOUNCEMENT_TOO_LARGE']

function rawMap(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    v: 1,
    capsuleId: Buffer.from('ab'.repeat(32), 'hex'),
    cid: ann.cid,
    owner: Buffer.from('11'.repeat(20), 'hex'),
    registry: Buffer.from('22'.repeat(20), 'hex'),
    chainId: 31337,
    keyguardPeer: PEER,
    ...over,
  }
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

describe('announcement codec', () => {
  it('round-trips and is canonical', () => {
    const bytes = encodeCapsuleAnnouncement(ann)
    expect(decodeCapsuleAnnouncement(bytes)).toEqual(ann)
    expect(Buffer.from(encode(rawMap())).equals(Buffer.from(bytes))).toBe(true)
    // mixed-case hex input decodes to lowercase
    const upper = {
      ...ann,
      owner: ann.owner.replace('0x', '0X').replace('0X', '0x').toUpperCase().replace('0X', '0x'),
    }
    expect(decodeCapsuleAnnouncement(encodeCapsuleAnnouncement(upper)).owner).toBe(ann.owner)
  })

  it('rejects each malformed field with ANNOUNCEMENT_FORMAT', () => {
    const cases: Record<string, unknown>[] = [
      { capsuleId: Buffer.alloc(31) },
      { capsuleId: 'ab'.repeat(32) },
      { owner: Buffer.alloc(21) },
      { registry: 7 },
      { chainId: 0 },
      { chainId: -1 },
      { chainId: 'x' },
      { cid: 'not-a-cid' },
      { cid: '' },
      { keyguardPeer: 'nope' },
      { keyguardPeer: 'x'.repeat(200) },
      { extra: 1 },
    ]
    for (const over of cases) {
      expect(
        codeOf(() => decodeCapsuleAnnouncement(encode(rawMap(over)))),
        JSON.stringify(Object.keys(over)),
      ).toBe('ANNOUNCEMENT_FORMAT')
    }
    const missing = rawMap()
    delete missing.cid
    expect(codeOf(() => decodeCapsuleAnnouncement(encode(missing)))).toBe('ANNOUNCEMENT_FORMAT')
    expect(codeOf(() => decodeCapsuleAnnouncement(encode([1, 2])))).toBe('ANNOUNCEMENT_FORMAT')
    expect(codeOf(() => decodeCapsuleAnnouncement(encode('text')))).toBe('ANNOUNCEMENT_FORMAT')
    expect(codeOf(() => decodeCapsuleAnnouncement('x' as never))).toBe('ANNOUNCEMENT_FORMAT')
    expect(codeOf(() => encodeCapsuleAnnouncement({ ...ann, owner: '0x12' }))).toBe(
      'ANNOUNCEMENT_FORMAT',
    )
  })

  it('rejects another version with ANNOUNCEMENT_VERSION', () => {
    expect(codeOf(() => decodeCapsuleAnnouncement(encode(rawMap({ v: 2 }))))).toBe(
      'ANNOUNCEMENT_VERSION',
    )
    expect(codeOf(() => decodeCapsuleAnnouncement(encode(rawMap({ v: '1' }))))).toBe(
      'ANNOUNCEMENT_VERSION',
    )
  })

  it('rejects non-canonical encodings', () => {
    const bytes = encodeCapsuleAnnouncement(ann)
    // trailing byte
    expect(codeOf(() => decodeCapsuleAnnouncement(Buffer.concat([bytes, Buffer.from([0])])))).toBe(
      'ANNOUNCEMENT_FORMAT',
    )
    // chain id as a non-minimal u32 (0x1a 00 00 7a 69) instead of u16 (0x19 7a 69)
    const i = Buffer.from(bytes).indexOf(Buffer.from([0x19, 0x7a, 0x69]))
    expect(i).toBeGreaterThan(0)
    const longer = Buffer.concat([
      bytes.subarray(0, i),
      Buffer.from([0x1a, 0, 0, 0x7a, 0x69]),
      bytes.subarray(i + 3),
    ])
    expect(codeOf(() => decodeCapsuleAnnouncement(longer))).toBe('ANNOUNCEMENT_FORMAT')
  })

  it('rejects truncated input at every length', () => {
    const bytes = encodeCapsuleAnnouncement(ann)
    for (let n = 0; n < bytes.length; n++) {
      expect(codeOf(() => decodeCapsuleAnnouncement(bytes.subarray(0, n)))).toBe(
        'ANNOUNCEMENT_FORMAT',
      )
    }
  })

  it('rejects oversized input with ANNOUNCEMENT_TOO_LARGE', () => {
    expect(
      codeOf(() => decodeCapsuleAnnouncement(new Uint8Array(MAX_ANNOUNCEMENT_BYTES + 1))),
    ).toBe('ANNOUNCEMENT_TOO_LARGE')
  })

  it('fuzz: random bytes and mutations only ever fail with a typed error', () => {
    const bytes = encodeCapsuleAnnouncement(ann)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), (data) => {
        const code = codeOf(() => decodeCapsuleAnnouncement(data))
        expect(code === undefined || CODES.includes(code)).toBe(true)
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.nat(bytes.length - 1), fc.integer({ min: 0, max: 255 }), (at, value) => {
        const m = Uint8Array.from(bytes)
        m[at] = value
        const code = codeOf(() => decodeCapsuleAnnouncement(m))
        if (code === undefined)
          expect(encodeCapsuleAnnouncement(decodeCapsuleAnnouncement(m))).toEqual(m)
        else expect(CODES).toContain(code)
      }),
      { numRuns: 1000 },
    )
  })
})

describe('announcements between two real nodes', () => {
  it('B receives what A announces; malformed messages are dropped and reported', async () => {
    const a = await createDigicapNode()
    const b = await createDigicapNode()
    try {
      const got: { ann: CapsuleAnnouncement; from: string }[] = []
      const errors: string[] = []
      const received = new Promise<void>((resolve) => {
        subscribeCapsuleAnnouncements(
          b,
          (x, from) => {
            got.push({ ann: x, from })
            resolve()
          },
          { onError: (e) => errors.push(e.code) },
        )
      })
      await a.libp2p.dial(multiaddr(b.multiaddrs()[0] as string))
      const mine = {
        ...ann,
        capsuleId: `0x${randomBytes(32).toString('hex')}`,
        keyguardPeer: a.peerId,
      }
      // a malformed message first: same topic, garbage bytes
      const pubsub = a.libp2p.services.pubsub
      if (!pubsub) throw new Error('the node runs gossipsub by default')
      const deadline = Date.now() + 5000
      while (pubsub.getSubscribers(CAPSULE_TOPIC).length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50))
      }
      await pubsub.publish(CAPSULE_TOPIC, new Uint8Array([0xff, 0x00]))
      const { recipients } = await announceCapsule(a, mine)
      expect(recipients).toBe(1)
      await received
      expect(got).toHaveLength(1)
      expect(got[0]?.ann).toEqual(mine)
      expect(got[0]?.from).toBe(a.peerId)
      expect(errors).toEqual(['ANNOUNCEMENT_FORMAT'])
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  })

  it('announcing with no subscriber fails with ANNOUNCE_NO_SUBSCRIBERS after the timeout', async () => {
    const a = await createDigicapNode()
    try {
      const t0 = Date.now()
      await expect(announceCapsule(a, ann, { timeoutMs: 200 })).rejects.toMatchObject({
        code: 'ANNOUNCE_NO_SUBSCRIBERS',
      })
      expect(Date.now() - t0).toBeLessThan(2000)
    } finally {
      await a.stop()
    }
  })
})
