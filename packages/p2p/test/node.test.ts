import { randomBytes } from 'node:crypto'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import {
  announceCapsule,
  createDigicapNode,
  privateKeyFromSeed,
  subscribeCapsuleAnnouncements,
} from '../src/index.ts'

describe('createDigicapNode', () => {
  it('derives a stable peer id from a seed and listens on loopback', async () => {
    const seed = new Uint8Array(32).fill(7)
    const key = await privateKeyFromSeed(seed)
    const node = await createDigicapNode({ privateKey: key })
    try {
      const again = await createDigicapNode({ privateKey: await privateKeyFromSeed(seed) })
      expect(again.peerId).toBe(node.peerId)
      await again.stop()
      expect(node.peerId.startsWith('12D3KooW')).toBe(true)
      expect(node.multiaddrs()[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)
      expect(Object.keys(node.libp2p.services).sort()).toEqual(['identify', 'ping', 'pubsub'])
    } finally {
      await node.stop()
      await node.stop()
    }
  })

  it('pubsub: false runs no gossipsub; announcing or following on it is P2P_PUBSUB_DISABLED', async () => {
    const node = await createDigicapNode({ pubsub: false })
    try {
      expect(Object.keys(node.libp2p.services).sort()).toEqual(['identify', 'ping'])
      expect(node.libp2p.getProtocols().some((p) => p.startsWith('/meshsub/'))).toBe(false)
      const ann = {
        capsuleId: `0x${'11'.repeat(32)}`,
        cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
        owner: `0x${'22'.repeat(20)}`,
        registry: `0x${'33'.repeat(20)}`,
        chainId: 1,
        keyguardPeer: node.peerId,
      }
      await expect(announceCapsule(node, ann)).rejects.toMatchObject({
        code: 'P2P_PUBSUB_DISABLED',
      })
      expect(() => subscribeCapsuleAnnouncements(node, () => {})).toThrow(
        expect.objectContaining({ code: 'P2P_PUBSUB_DISABLED' }),
      )
    } finally {
      await node.stop()
    }
  })

  it('dials its bootstrap list and can run the DHT', async () => {
    const a = await createDigicapNode({ dht: true })
    const b = await createDigicapNode({ dht: true, bootstrap: [a.multiaddrs()[0] as string] })
    try {
      expect(b.libp2p.services.dht).toBeDefined()
      const deadline = Date.now() + 10_000
      while (b.libp2p.getPeers().length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50))
      }
      expect(b.libp2p.getPeers().map(String)).toContain(a.peerId)
      const rtt = await b.libp2p.services.ping.ping(a.libp2p.peerId)
      expect(rtt).toBeGreaterThanOrEqual(0)
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  })

  it('shares its libp2p with our own protocols (libp2p.handle) next to bitswap', async () => {
    const a = await createDigicapNode()
    const b = await createDigicapNode()
    try {
      await a.libp2p.handle('/digicap/echo/1', async (stream) => {
        for await (const chunk of stream) stream.send(chunk.subarray())
        await stream.close()
      })
      const stream = await b.libp2p.dialProtocol(
        multiaddr(a.multiaddrs()[0] as string),
        '/digicap/echo/1',
      )
      stream.send(new TextEncoder().encode('ping'))
      await stream.close()
      const got: Uint8Array[] = []
      for await (const chunk of stream) got.push(chunk.subarray())
      expect(new TextDecoder().decode(Buffer.concat(got))).toBe('ping')
      expect(a.libp2p.getProtocols()).toContain('/digicap/echo/1')
      expect(a.libp2p.getProtocols().some((p) => p.startsWith('/ipfs/bitswap/'))).toBe(true)
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  })

  it('takes a connection gater (a keyguard guard): the peers it denies are refused after the handshake', async () => {
    const denied: string[] = []
    let refusedPeer = ''
    const a = await createDigicapNode({
      connectionGater: {
        denyInboundEncryptedConnection: (peer) => {
          denied.push(peer.toString())
          return peer.toString() === refusedPeer
        },
      },
    })
    const b = await createDigicapNode()
    const c = await createDigicapNode()
    refusedPeer = b.peerId
    try {
      const at = multiaddr(a.multiaddrs()[0] as string)
      // The dialer may see its connection open (muxer chosen inside noise) before the refusal
      // closes it: what counts is that no connection stays.
      await b.libp2p.dial(at).catch(() => undefined)
      await c.libp2p.dial(at)
      const deadline = Date.now() + 10_000
      const settled = () =>
        b.libp2p.getConnections().length === 0 && a.libp2p.getPeers().map(String).includes(c.peerId)
      while (!settled() && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50))
      }
      expect(b.libp2p.getConnections()).toHaveLength(0)
      expect(denied).toEqual([b.peerId, c.peerId])
      expect(a.libp2p.getPeers().map(String)).toEqual([c.peerId])
    } finally {
      await Promise.all([a.stop(), b.stop(), c.stop()])
    }
  })

  it('derives the RFC 8032 public keys, and the key @libp2p/crypto derives from any seed', async () => {
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
    // RFC 8032 §7.1, TEST 1, 2 and 3: secret key (the seed) → public key
    const vectors = [
      [
        '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
        'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
      ],
      [
        '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
        '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
      ],
      [
        'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
        'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
      ],
    ] as const
    for (const [secret, pub] of vectors) {
      const seed = Uint8Array.from(Buffer.from(secret, 'hex'))
      const key = await privateKeyFromSeed(seed)
      expect(hex(key.publicKey.raw)).toBe(pub)
      expect(hex(key.raw)).toBe(secret + pub)
      expect(hex(seed)).toBe(secret) // the caller's seed is left as it was
    }
    for (let i = 0; i < 16; i++) {
      const seed = new Uint8Array(randomBytes(32))
      const ours = await privateKeyFromSeed(seed)
      const theirs = await generateKeyPairFromSeed('Ed25519', seed)
      expect(hex(ours.raw)).toBe(hex(theirs.raw))
      expect(peerIdFromPrivateKey(ours).toString()).toBe(peerIdFromPrivateKey(theirs).toString())
      const message = randomBytes(64)
      expect(await theirs.publicKey.verify(message, await ours.sign(message))).toBe(true)
    }
  })

  it('rejects a bad seed with INVALID_ARGUMENT and a bad listen address with P2P_NODE_START', async () => {
    await expect(privateKeyFromSeed(new Uint8Array(31))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await expect(createDigicapNode({ listen: ['/not/an/addr'] })).rejects.toMatchObject({
      code: 'P2P_NODE_START',
    })
  })
})
