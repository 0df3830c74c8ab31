/**
 * Capsule announcements over gossipsub: topic {@link CAPSULE_TOPIC}, message = canonical CBOR
 * map `{v: 1, capsuleId: bstr(32), cid: tstr, owner: bstr(20), registry: bstr(20),
 * chainId: uint, keyguardPeer: tstr}`. Decoding is strict: cborg's strict options, then the
 * value must re-encode to the very same bytes (so exactly one encoding stands for each
 * announcement), and exactly these keys with these types.
 */
import { hexToBytes, isHex, strictCborDecodeOptions, toHex } from '@digicap/capsule-core'
import type { GossipSub, TopicValidatorResult } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import { decode, encode } from 'cborg'
import {
  AnnouncementFormatError,
  AnnouncementTooLargeError,
  AnnouncementVersionError,
  NoSubscribersError,
  PubsubDisabledError,
} from './errors.ts'
import type { DigicapNode } from './node.ts'
import { parseCid } from './store.ts'

// gossipsub's enum values, without loading gossipsub for them (a node may run without it)
const ACCEPT = 'accept' as TopicValidatorResult.Accept
const REJECT = 'reject' as TopicValidatorResult.Reject

/** The node's gossipsub. @throws {PubsubDisabledError} for a node started with `pubsub: false`. */
function pubsubOf(node: Pick<DigicapNode, 'libp2p'>): GossipSub {
  const pubsub = node.libp2p.services.pubsub
  if (pubsub) return pubsub
  throw new PubsubDisabledError('This node runs without gossipsub', {
    hint: 'Create the node without `pubsub: false` to announce or follow capsules.',
  })
}

/** The gossipsub topic of capsule announcements (the version is part of the name). */
export const CAPSULE_TOPIC = '/digicap/capsules/1'
/** The announcement format version (`v`). */
export const ANNOUNCEMENT_VERSION = 1
/** Largest announcement accepted or produced. */
export const MAX_ANNOUNCEMENT_BYTES = 1024
const MAX_TEXT = 128

/** A capsule announcement. Hex fields are lowercase `0x…` when decoded. */
export interface CapsuleAnnouncement {
  /** 32-byte capsule id, `0x` + 64 hex. */
  capsuleId: string
  /** CID of the capsule's UnixFS file. */
  cid: string
  /** Owner's Ethereum address. */
  owner: string
  /** CapsuleRegistry address. */
  registry: string
  /** EIP-155 chain id. */
  chainId: number
  /** Peer id of the keyguard that holds the data key. */
  keyguardPeer: string
}

const KEYS = ['capsuleId', 'chainId', 'cid', 'keyguardPeer', 'owner', 'registry', 'v'] as const

const DECODE_OPTIONS = strictCborDecodeOptions()

function fail(message: string, details: Record<string, unknown> = {}): never {
  throw new AnnouncementFormatError(`announcement: ${message}`, { details })
}

function hexField(field: string, value: unknown, length: number): Uint8Array {
  if (!isHex(value, length)) fail(`${field} must be 0x + ${length * 2} hex digits`, { field })
  return hexToBytes(value)
}

function checkText(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || Buffer.byteLength(value) > MAX_TEXT) {
    fail(`${field} must be a string of 1..${MAX_TEXT} bytes`, { field })
  }
  return value
}

function checkCid(value: unknown): string {
  const text = checkText('cid', value)
  try {
    if (parseCid(text).toString() !== text) fail('cid is not in its canonical string form')
  } catch (cause) {
    if (cause instanceof AnnouncementFormatError) throw cause
    throw new AnnouncementFormatError('announcement: cid does not parse', {
      cause,
      details: { field: 'cid' },
    })
  }
  return text
}

function checkPeer(value: unknown): string {
  const text = checkText('keyguardPeer', value)
  try {
    if (peerIdFromString(text).toString() !== text) fail('keyguardPeer is not canonical')
  } catch (cause) {
    if (cause instanceof AnnouncementFormatError) throw cause
    throw new AnnouncementFormatError('announcement: keyguardPeer is not a peer id', {
      cause,
      details: { field: 'keyguardPeer' },
    })
  }
  return text
}

function checkChainId(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    fail('chainId must be a positive safe integer', { field: 'chainId' })
  }
  return value
}

/**
 * Encodes an announcement canonically.
 *
 * @throws {AnnouncementFormatError} for a field of the wrong form.
 * @example
 * ```ts
 * const bytes = encodeCapsuleAnnouncement({ capsuleId, cid, owner, registry, chainId: 31337, keyguardPeer })
 * ```
 */
export function encodeCapsuleAnnouncement(ann: CapsuleAnnouncement): Uint8Array {
  const map = {
    v: ANNOUNCEMENT_VERSION,
    capsuleId: hexField('capsuleId', ann.capsuleId, 32),
    cid: checkCid(ann.cid),
    owner: hexField('owner', ann.owner, 20),
    registry: hexField('registry', ann.registry, 20),
    chainId: checkChainId(ann.chainId),
    keyguardPeer: checkPeer(ann.keyguardPeer),
  }
  const out = encode(map)
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/**
 * Decodes an announcement strictly.
 *
 * @throws {AnnouncementTooLargeError} for more than {@link MAX_ANNOUNCEMENT_BYTES}.
 * @throws {AnnouncementVersionError} for a `v` other than 1.
 * @throws {AnnouncementFormatError} for anything else that is not exactly one canonical
 *   announcement (bad CBOR, non-canonical encoding, missing or extra keys, wrong types).
 * @example
 * ```ts
 * const ann = decodeCapsuleAnnouncement(event.detail.data)
 * ```
 */
export function decodeCapsuleAnnouncement(bytes: Uint8Array): CapsuleAnnouncement {
  if (!(bytes instanceof Uint8Array)) fail('input must be a Uint8Array', { got: typeof bytes })
  if (bytes.length > MAX_ANNOUNCEMENT_BYTES) {
    throw new AnnouncementTooLargeError('announcement is too large', {
      details: { length: bytes.length, max: MAX_ANNOUNCEMENT_BYTES },
    })
  }
  let value: unknown
  try {
    value = decode(bytes, DECODE_OPTIONS)
  } catch (cause) {
    throw new AnnouncementFormatError('announcement: not valid CBOR', {
      cause,
      details: { length: bytes.length },
    })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('not a map')
  if (value instanceof Uint8Array) fail('not a map')
  const map = value as Record<string, unknown>
  if (!('v' in map)) fail('missing v')
  if (map.v !== ANNOUNCEMENT_VERSION) {
    throw new AnnouncementVersionError('announcement version is not supported', {
      details: { v: typeof map.v === 'number' ? map.v : typeof map.v },
    })
  }
  const keys = Object.keys(map).sort()
  if (keys.length !== KEYS.length || keys.some((k, i) => k !== KEYS[i])) {
    fail('wrong set of keys', { keys: keys.slice(0, 16) })
  }
  const bstr = (field: string, length: number): string => {
    const v = map[field]
    if (!(v instanceof Uint8Array) || v.length !== length) {
      fail(`${field} must be ${length} bytes`, { field })
    }
    return toHex(v)
  }
  const ann: CapsuleAnnouncement = {
    capsuleId: bstr('capsuleId', 32),
    cid: checkCid(map.cid),
    owner: bstr('owner', 20),
    registry: bstr('registry', 20),
    chainId: checkChainId(map.chainId),
    keyguardPeer: checkPeer(map.keyguardPeer),
  }
  const again = encodeCapsuleAnnouncement(ann)
  if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i])) {
    fail('not canonical CBOR')
  }
  return ann
}

export interface AnnounceOptions {
  /** How long to wait for a subscriber to the topic. Default 5000 ms. */
  timeoutMs?: number
  signal?: AbortSignal
}

/**
 * Publishes an announcement on {@link CAPSULE_TOPIC}, after waiting until at least one peer
 * subscribes to the topic (gossipsub drops messages published before that).
 *
 * @returns the number of peers the message was sent to.
 * @throws {NoSubscribersError} if no peer subscribes before the timeout.
 * @throws {AnnouncementFormatError} for a malformed announcement.
 * @example
 * ```ts
 * await announceCapsule(node, { capsuleId, cid, owner, registry, chainId, keyguardPeer: node.peerId })
 * ```
 */
export async function announceCapsule(
  node: Pick<DigicapNode, 'libp2p'>,
  ann: CapsuleAnnouncement,
  options: AnnounceOptions = {},
): Promise<{ recipients: number }> {
  const bytes = encodeCapsuleAnnouncement(ann)
  const pubsub = pubsubOf(node)
  const deadline = Date.now() + (options.timeoutMs ?? 5000)
  while (pubsub.getSubscribers(CAPSULE_TOPIC).length === 0) {
    if (options.signal?.aborted || Date.now() >= deadline) {
      throw new NoSubscribersError('No peer subscribes to the capsule topic', {
        details: { topic: CAPSULE_TOPIC, peers: node.libp2p.getPeers().length },
        hint: 'Connect to a peer that listens for announcements (bootstrap list), then retry.',
      })
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  const result = await pubsub.publish(CAPSULE_TOPIC, bytes)
  return { recipients: result.recipients.length }
}

export interface SubscribeOptions {
  /** Called for each message that fails to decode (it is then dropped). */
  onError?: (
    error: AnnouncementFormatError | AnnouncementVersionError | AnnouncementTooLargeError,
    from: string,
  ) => void
}

/**
 * Subscribes to {@link CAPSULE_TOPIC} and calls `handler` with each valid announcement and
 * the peer that published it. A topic validator rejects malformed messages, so they are
 * neither delivered nor forwarded, and lower the sender's gossipsub score; each is reported
 * to `onError` with the peer it came from.
 *
 * @returns a function that unsubscribes.
 * @example
 * ```ts
 * const stop = subscribeCapsuleAnnouncements(node, (ann, from) => console.log(ann.cid, from))
 * ```
 */
export function subscribeCapsuleAnnouncements(
  node: Pick<DigicapNode, 'libp2p'>,
  handler: (ann: CapsuleAnnouncement, from: string) => void,
  options: SubscribeOptions = {},
): () => void {
  const pubsub = pubsubOf(node)
  // The validator runs before delivery and before forwarding: a malformed announcement is
  // rejected (not forwarded, and counted against the sender's peer score).
  pubsub.topicValidators.set(CAPSULE_TOPIC, (peer, msg) => {
    try {
      decodeCapsuleAnnouncement(msg.data)
      return ACCEPT
    } catch (err) {
      options.onError?.(err as AnnouncementFormatError, peer.toString())
      return REJECT
    }
  })
  const listener = (
    event: CustomEvent<{ topic: string; data: Uint8Array; from?: { toString(): string } }>,
  ) => {
    const msg = event.detail
    if (msg.topic !== CAPSULE_TOPIC) return
    let ann: CapsuleAnnouncement
    try {
      ann = decodeCapsuleAnnouncement(msg.data)
    } catch {
      return
    }
    handler(ann, msg.from?.toString() ?? '')
  }
  pubsub.addEventListener('message', listener as never)
  pubsub.subscribe(CAPSULE_TOPIC)
  let done = false
  return () => {
    if (done) return
    done = true
    pubsub.removeEventListener('message', listener as never)
    pubsub.topicValidators.delete(CAPSULE_TOPIC)
    pubsub.unsubscribe(CAPSULE_TOPIC)
  }
}
