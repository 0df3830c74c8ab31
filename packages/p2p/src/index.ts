/**
 * @packageDocumentation
 *
 * `@digicap/p2p` — the networking kit every Digicap node shares: one libp2p node (TCP,
 * noise, yamux, identify, ping, gossipsub, optional kad-dht) that helia uses for bitswap and
 * our protocols use through `libp2p.handle`; a `CapsuleStore` over UnixFS; and capsule
 * announcements over gossipsub.
 *
 * Guarantees:
 * - The node's identity is the Ed25519 key you pass (derive it from the owner's libp2p seed
 *   with {@link privateKeyFromSeed}); connections are encrypted (noise) and authenticated.
 * - Announcements are canonical CBOR, decoded strictly: anything that is not exactly one
 *   announcement of version 1 fails with a typed error and is dropped by subscribers.
 * - `heliaCapsuleStore` streams: `put` from a file or stream and `get` keep memory bounded.
 * - Every error crossing this boundary is a `DigicapError` with a stable `code`.
 *
 * @example
 * ```ts
 * import { announceCapsule, createDigicapNode, heliaCapsuleStore, privateKeyFromSeed,
 *   subscribeCapsuleAnnouncements } from '@digicap/p2p'
 *
 * const node = await createDigicapNode({ privateKey: await privateKeyFromSeed(seed), dataDir })
 * const store = heliaCapsuleStore(node.helia)
 * const cid = await store.put({ path: 'photo.capsule' })
 * subscribeCapsuleAnnouncements(node, (ann, from) => console.log('capsule', ann.cid, 'from', from))
 * await announceCapsule(node, { capsuleId, cid, owner, registry, chainId, keyguardPeer: node.peerId })
 * await node.stop()
 * ```
 */

export { capsuleImportOptions } from './import/profile.ts'
export * from './light.ts'
