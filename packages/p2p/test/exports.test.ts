import { expect, it } from 'vitest'
import * as p2p from '../src/index.ts'

it('exports exactly this public surface', () => {
  expect(Object.keys(p2p).sort()).toMatchInlineSnapshot(`
    [
      "ANNOUNCEMENT_VERSION",
      "AnnouncementFormatError",
      "AnnouncementTooLargeError",
      "AnnouncementVersionError",
      "CAPSULE_TOPIC",
      "CONNECTION_BACKLOG_BYTES",
      "CONNECTION_MONITOR",
      "CapsuleStoreError",
      "InvalidCidError",
      "MAX_ANNOUNCEMENT_BYTES",
      "MESSAGE_BURST",
      "MESSAGE_RATE",
      "MIN_PROGRESS_BYTES",
      "NoSubscribersError",
      "NodeStartError",
      "PeerFloodingError",
      "PeerNotReadingError",
      "PubsubDisabledError",
      "SERVE_MEMORY_BYTES",
      "UNIXFS_CHUNK_SIZE",
      "UNIXFS_MAX_LINKS",
      "announceCapsule",
      "capsuleImportOptions",
      "createDigicapNode",
      "decodeCapsuleAnnouncement",
      "encodeCapsuleAnnouncement",
      "heliaCapsuleStore",
      "parseCid",
      "privateKeyFromSeed",
      "subscribeCapsuleAnnouncements",
    ]
  `)
})

it('names each error class once, with its code', () => {
  const codes = Object.entries(p2p)
    .filter(([k]) => k.endsWith('Error'))
    .map(([k, C]) => [k, new (C as new (m: string) => { code: string; name: string })('x').code])
  expect(Object.fromEntries(codes)).toMatchInlineSnapshot(`
    {
      "AnnouncementFormatError": "ANNOUNCEMENT_FORMAT",
      "AnnouncementTooLargeError": "ANNOUNCEMENT_TOO_LARGE",
      "AnnouncementVersionError": "ANNOUNCEMENT_VERSION",
      "CapsuleStoreError": "CAPSULE_STORE",
      "InvalidCidError": "INVALID_CID",
      "NoSubscribersError": "ANNOUNCE_NO_SUBSCRIBERS",
      "NodeStartError": "P2P_NODE_START",
      "PeerFloodingError": "P2P_PEER_FLOODING",
      "PeerNotReadingError": "P2P_PEER_NOT_READING",
      "PubsubDisabledError": "P2P_PUBSUB_DISABLED",
    }
  `)
})
