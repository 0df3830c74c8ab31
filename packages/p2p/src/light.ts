/**
 * `@digicap/p2p/light`: the node, the capsule store and announcements, as the package's main
 * entry has them, without the importer's profile (`capsuleImportOptions`). Nothing here loads
 * the UnixFS importer, gossipsub or kad-dht until a node or store uses them (`put`, a node
 * with pubsub or dht): a process that only fetches, like a one-shot `executor-node run`,
 * imports this (ADR 0042).
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
export { CONNECTION_MONITOR } from './connection-monitor.ts'
export {
  AnnouncementFormatError,
  AnnouncementTooLargeError,
  AnnouncementVersionError,
  CapsuleStoreError,
  InvalidCidError,
  NodeStartError,
  NoSubscribersError,
  PeerFloodingError,
  PeerNotReadingError,
  PubsubDisabledError,
} from './errors.ts'
export { CONNECTION_BACKLOG_BYTES, MIN_PROGRESS_BYTES } from './fetch/block-send/install.ts'
export { MESSAGE_BURST, MESSAGE_RATE } from './fetch/block-send/message-budget.ts'
export { SERVE_MEMORY_BYTES } from './fetch/block-send/serve-as-read.ts'
export { UNIXFS_CHUNK_SIZE, UNIXFS_MAX_LINKS } from './import/sizes.ts'
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
