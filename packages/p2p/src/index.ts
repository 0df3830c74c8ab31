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

export type {
  AnnounceOptions,
  CapsuleAnnouncement,
  SubscribeOptions,
} from './announce.ts'
export {
  ANNOUNCEMENT_VERSION,
  announceCapsule,
  CAPSULE_TOPIC,
  decodeCapsuleAnnouncement,
  encodeCapsuleAnnouncement,
  MAX_ANNOUNCEMENT_BYTES,
  subscribeCapsuleAnnouncements,
} from './announce.ts'
export {
  AnnouncementFormatError,
  AnnouncementTooLargeError,
  AnnouncementVersionError,
  CapsuleStoreError,
  InvalidCidError,
  NodeStartError,
  NoSubscribersError,
} from './errors.ts'
export { capsuleImportOptions, UNIXFS_CHUNK_SIZE, UNIXFS_MAX_LINKS } from './import/profile.ts'
export type {
  CreateDigicapNodeInit,
  DigicapLibp2p,
  DigicapNode,
  DigicapServices,
} from './node.ts'
export { createDigicapNode, privateKeyFromSeed } from './node.ts'
export type {
  CapsuleSource,
  CapsuleStore,
  CapsuleStoreProgressOptions,
  FetchNetworkProgress,
} from './store.ts'
export { heliaCapsuleStore, parseCid } from './store.ts'
