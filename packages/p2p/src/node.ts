/**
 * The Digicap node: one libp2p node (TCP, noise, yamux, identify, ping, gossipsub, optional
 * kad-dht, bootstrap list) shared by helia (bitswap) and our own protocols.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { InvalidArgumentError } from '@digicap/capsule-core'
import { withBitswap } from '@helia/bitswap'
import type { HeliaWithLibp2p } from '@helia/libp2p'
import { bootstrap } from '@libp2p/bootstrap'
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import type { GossipSub } from '@libp2p/gossipsub'
import { type Identify, identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p, PrivateKey } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'
import { type Ping, ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createLibp2p } from 'libp2p'
import { userAgent } from 'libp2p/user-agent'
import { CONNECTION_MONITOR } from './connection-monitor.ts'
import { FolderDatastore } from './datastore/folder-datastore.ts'
import { NodeStartError } from './errors.ts'
import { type BlockSend, installBlockSend } from './fetch/block-send/install.ts'
import { installReceiveWindow } from './fetch/block-send/receive-window.ts'
import {
  installServeAsRead,
  SERVE_MEMORY_BYTES,
  type ServeAsRead,
} from './fetch/block-send/serve-as-read.ts'
import { type HaveFirstFetch, installHaveFirst } from './fetch/have-first/index.ts'
import { createReceivedDigests } from './fetch/received-digests.ts'
import {
  installWantResend,
  MAX_TIMER_MS,
  WANT_RESEND_MS,
  type WantResend,
} from './fetch/want-resend.ts'
import { openDataDirBlockstore } from './filestore/data-dir.ts'
import type { FilestoreBlockstore } from './filestore/filestore-blockstore.ts'
import { loadHelia } from './helia/load-helia.ts'
import { withLibp2p } from './helia/with-libp2p.ts'
import { preparedKeyNoiseCrypto } from './noise-crypto.ts'
import { persistPeerRecords } from './peer-records.ts'

/** How long a node with a data folder runs before it sweeps the folder's leftover temp files. */
const TEMP_SWEEP_DELAY_MS = 30_000

/** The services of a Digicap node's libp2p. `pubsub` and `dht` are present only when enabled. */
export interface DigicapServices {
  identify: Identify
  ping: Ping
  pubsub?: GossipSub
  dht?: KadDHT
  [key: string]: unknown
}

export type DigicapLibp2p = Libp2p<DigicapServices>

export interface CreateDigicapNodeInit {
  /**
   * The node's persistent identity. Use {@link privateKeyFromSeed} with the owner's libp2p
   * seed. Default: a fresh random key (tests only: the peer id changes on every start).
   */
  privateKey?: PrivateKey
  /** Multiaddrs to listen on. Default `['/ip4/127.0.0.1/tcp/0']`. */
  listen?: readonly string[]
  /**
   * Public multiaddrs to advertise (identify, `multiaddrs()`) in addition to the listen
   * addresses, e.g. the forwarded router address of a node behind NAT. Default none.
   */
  announce?: readonly string[]
  /** Multiaddrs (with `/p2p/<peerId>`) to dial at start. Default none. */
  bootstrap?: readonly string[]
  /**
   * Folder for blocks (`<dataDir>/blocks`) and the datastore (`<dataDir>/datastore`).
   * Default: both in memory.
   */
  dataDir?: string
  /**
   * With `dataDir`: keep the datastore (pins) on disk (`'fs'`, the default) or in
   * memory (`'memory'`, for a short-lived second process that only adds blocks to the shared
   * on-disk blockstore while a long-running node owns the datastore).
   */
  datastore?: 'fs' | 'memory'
  /**
   * With `dataDir`: once the node has run this many ms, it removes the temporary files that
   * writers killed mid-write left in the block folders (older than an hour: a younger one may be
   * another process's write in progress). Default 30 s (a one-shot
   * run ends first); `false`: never.
   */
  sweepTemporaryFilesAfterMs?: number | false
  /**
   * The small bitswap messages a connection may send this node: a burst, then a rate a second
   * (default 1 024, then 512/s; ADR 0090). A connection over it is closed
   * (`P2P_PEER_FLOODING`). Messages of 16 KiB and more (blocks) are not counted: their bytes
   * are their cost.
   */
  bitswapMessageBudget?: { burst?: number; ratePerSecond?: number }
  /** Run kad-dht (peer and content routing on the public network). Default `false`. */
  dht?: boolean
  /**
   * Run gossipsub (capsule announcements). Default `true`. `false` for a node that only
   * fetches and answers (a one-shot `executor-node run`): gossipsub is then not even loaded.
   */
  pubsub?: boolean
  /**
   * libp2p's connection gater, e.g. a keyguard's connection guard's `gater` (refuses strangers
   * cut for flooding right after the handshake). Default libp2p's (allows all).
   */
  connectionGater?: ConnectionGater
  /**
   * A bitswap want with no block this many ms after it was last sent is sent again to every
   * connected peer (a dropped block message never stalls a fetch). Default
   * {@link WANT_RESEND_MS} (10 s).
   */
  wantResendMs?: number
  /**
   * How blocks are asked of peers. `'have-first'` (the default, ADR 0044): want-have of every
   * connected peer, want-block of one peer that has the block, the next one if it fails (a
   * pull from many peers receives each block about once). `'broadcast'`: bitswap's own
   * want-block to every connected peer (every peer holding the block sends it).
   */
  fetch?: 'have-first' | 'broadcast'
  /**
   * Bytes of blocks this node holds at once to serve peers, all of them together (ADR 0066):
   * read and not yet taken by the connections. Default {@link SERVE_MEMORY_BYTES} (64 MiB).
   */
  servingMemoryBytes?: number
}

export interface DigicapNode {
  readonly helia: HeliaWithLibp2p<DigicapServices>
  readonly libp2p: DigicapLibp2p
  /** The peer id, as a base58btc string. */
  readonly peerId: string
  /** Current listen addresses including `/p2p/<peerId>`. */
  multiaddrs(): string[]
  /** Bytes of blocks held now to serve peers (bounded by `servingMemoryBytes`). */
  servingBytes(): number
  /** Stops helia and libp2p and closes the stores. Idempotent. */
  stop(): Promise<void>
}

/**
 * The Ed25519 libp2p key for a 32-byte seed (the owner's `libp2pSeed` from keyguard).
 *
 * @throws {InvalidArgumentError} for a seed that is not 32 bytes.
 * @example
 * ```ts
 * const privateKey = await privateKeyFromSeed(secrets.libp2pSeed)
 * ```
 */
export async function privateKeyFromSeed(seed: Uint8Array): Promise<PrivateKey> {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new InvalidArgumentError('libp2p seed must be 32 bytes', {
      details: { length: seed instanceof Uint8Array ? seed.length : typeof seed },
    })
  }
  // OpenSSL derives the public key. `@libp2p/crypto`'s `generateKeyPairFromSeed` asks noble,
  // whose first Ed25519 call in a process builds its base-point tables: ~40 ms of every cold
  // command that opens a node (ADR 0064). The key signs and verifies through node:crypto either way.
  const der = new Uint8Array(ED25519_PKCS8_PREFIX.length + 32)
  der.set(ED25519_PKCS8_PREFIX)
  der.set(seed, ED25519_PKCS8_PREFIX.length)
  // libp2p's raw Ed25519 private key: the seed, then the public key (RFC 8032 §5.1.5)
  const raw = new Uint8Array(64)
  try {
    const secret = createPrivateKey({ key: Buffer.from(der.buffer), format: 'der', type: 'pkcs8' })
    const spki = createPublicKey(secret).export({ format: 'der', type: 'spki' })
    raw.set(seed)
    raw.set(spki.subarray(spki.length - 32), 32)
    return privateKeyFromRaw(raw) // a copy: `raw` is wiped below
  } finally {
    der.fill(0)
    raw.fill(0)
  }
}

/** An Ed25519 private key's PKCS #8 DER before its 32-byte seed (RFC 8410 §7). */
const ED25519_PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
])

/**
 * Creates and starts a Digicap node.
 *
 * @throws {NodeStartError} if the stores cannot be opened or libp2p cannot start (for
 *   example a listen address that is taken or malformed).
 * @example
 * ```ts
 * const node = await createDigicapNode({ privateKey, dataDir: '/var/lib/digicap/ipfs' })
 * node.libp2p.handle('/digicap/key-release/1', handler)
 * console.log(node.peerId, node.multiaddrs())
 * await node.stop()
 * ```
 */
export async function createDigicapNode(init: CreateDigicapNodeInit = {}): Promise<DigicapNode> {
  const wantResendMs = init.wantResendMs ?? WANT_RESEND_MS
  if (!Number.isInteger(wantResendMs) || wantResendMs < 1 || wantResendMs > MAX_TIMER_MS) {
    throw new InvalidArgumentError('wantResendMs must be a whole number of milliseconds', {
      details: { wantResendMs, max: MAX_TIMER_MS },
      hint: `Give 1 to ${MAX_TIMER_MS} (the default is ${WANT_RESEND_MS}).`,
    })
  }
  const fetchMode = init.fetch ?? 'have-first'
  if (fetchMode !== 'have-first' && fetchMode !== 'broadcast') {
    throw new InvalidArgumentError('fetch must be have-first or broadcast', {
      details: { fetch: String(fetchMode).slice(0, 40) },
      hint: "Give 'have-first' (the default) or 'broadcast'.",
    })
  }
  const listen = [...(init.listen ?? ['/ip4/127.0.0.1/tcp/0'])]
  const bootstrapList = [...(init.bootstrap ?? [])]
  let blockstore: MemoryBlockstore | FilestoreBlockstore
  let datastore: MemoryDatastore | FolderDatastore
  const closers: (() => Promise<void>)[] = []
  const closeStores = async () => {
    for (const close of closers) await close().catch(() => {})
  }
  try {
    if (init.dataDir !== undefined) {
      await mkdir(init.dataDir, { recursive: true, mode: 0o700 })
      // copies under blocks/, and the blocks `pi-node seal` keeps as references to capsule files
      const fsBlocks = await openDataDirBlockstore(init.dataDir)
      // a node that keeps running sweeps what writers killed mid-write left (ADR 0063); a
      // one-shot run usually ends first and never pays for the folder's listing (one that runs
      // longer sweeps too: harmless)
      const sweepAfter = init.sweepTemporaryFilesAfterMs ?? TEMP_SWEEP_DELAY_MS
      if (sweepAfter !== false) {
        const sweep = setTimeout(() => {
          fsBlocks.sweepTemporaryFiles().catch(() => {})
        }, sweepAfter)
        sweep.unref?.()
        closers.push(async () => clearTimeout(sweep))
      }
      closers.push(() => fsBlocks.close())
      blockstore = fsBlocks
      if (init.datastore === 'memory') {
        datastore = new MemoryDatastore()
      } else {
        const fsData = new FolderDatastore(join(init.dataDir, 'datastore'))
        await fsData.open()
        closers.push(() => fsData.close())
        datastore = fsData
      }
    } else {
      blockstore = new MemoryBlockstore()
      datastore = new MemoryDatastore()
    }
  } catch (cause) {
    await closeStores()
    throw new NodeStartError('Cannot open the block or data store', {
      cause,
      details: { dataDir: init.dataDir },
      hint: 'Check that the data folder exists and is writable by this user.',
    })
  }

  const peerDiscovery = bootstrapList.length > 0 ? [bootstrap({ list: bootstrapList })] : []
  const services: Record<string, unknown> = { identify: identify(), ping: ping() }
  // loaded only when used: a one-shot fetch pays for neither (ADR 0042)
  if (init.pubsub !== false) {
    const { gossipsub } = await import('@libp2p/gossipsub')
    services.pubsub = gossipsub({ emitSelf: false })
  }
  if (init.dht === true) {
    const { kadDHT } = await import('@libp2p/kad-dht')
    services.dht = kadDHT({ clientMode: false })
  }

  let helia: HeliaWithLibp2p<DigicapServices>
  let wantResend: WantResend
  let haveFirst: HaveFirstFetch | undefined
  let blockSend: BlockSend
  let serveAsRead: ServeAsRead
  // libp2p's own store in memory (ADR 0050), its peer records kept in the data folder
  const libp2pStore = new MemoryDatastore()
  const digests = createReceivedDigests()
  const peerRecords =
    datastore instanceof FolderDatastore
      ? await persistPeerRecords(libp2pStore, datastore)
      : undefined
  try {
    // libp2p is built here with only our transports and services; `createHelia` and
    // `@helia/libp2p`'s index would load libp2p's whole default set-up (see load-helia.ts).
    const { Helia, name, version } = await loadHelia()
    // helia's block check reuses the digest bitswap computed of the same bytes (ADR 0057)
    const base = new Helia({ name, version, blockstore, datastore, hashers: [digests.hasher] })
    const libp2p = await createLibp2p({
      ...(init.privateKey ? { privateKey: init.privateKey } : {}),
      start: false,
      // libp2p's own store (the peer store, kad-dht's records) stays in memory: libp2p writes the
      // peer's record on every protocol stream, before its handler runs, and a bitswap message is
      // a stream; on disk that wait let a block message pile up past the stream's 4 MiB read
      // limit, the stream was aborted and the block waited for its resend (ADR 0050)
      datastore: libp2pStore,
      nodeInfo: { name, version, userAgent: `${name}/${version} ${userAgent()}` },
      addresses: {
        listen,
        ...(init.announce?.length ? { appendAnnounce: [...init.announce] } : {}),
      },
      ...(init.connectionGater ? { connectionGater: init.connectionGater } : {}),
      transports: [tcp()],
      connectionEncrypters: [noise({ crypto: preparedKeyNoiseCrypto })],
      streamMuxers: [yamux()],
      // a dead peer is still found (within two minutes); a busy one keeps its connection
      connectionMonitor: CONNECTION_MONITOR,
      peerDiscovery,
      services: services as never,
    })
    const withNet = withLibp2p(base, libp2p as unknown as DigicapLibp2p)
    helia = withBitswap(withNet)
    await helia.start()
    wantResend = installWantResend(helia, wantResendMs)
    await installReceiveWindow(helia, libp2p as unknown as DigicapLibp2p, init.bitswapMessageBudget)
    serveAsRead = installServeAsRead(helia, {
      ...(init.servingMemoryBytes === undefined ? {} : { memoryBytes: init.servingMemoryBytes }),
    })
    // a lost kept stream (ADR 0062): what this node sent the peer on it is sent again at once,
    // its wants to the peer and its answers to the peer's wants
    blockSend = installBlockSend(helia, {
      onStreamLost: (peer) => {
        wantResend.resendTo(peer)
        haveFirst?.resendTo(peer)
        serveAsRead.answerAgain(peer)
      },
    })
    digests.listen(helia)
    if (fetchMode === 'have-first') haveFirst = installHaveFirst(helia, libp2p, wantResendMs)
  } catch (cause) {
    await peerRecords?.stop()
    await closeStores()
    throw new NodeStartError('Cannot start the libp2p node', {
      cause,
      details: { listen, reason: (cause as Error)?.message },
      hint: 'Check the listen addresses (port taken?) and the private key.',
    })
  }

  const libp2p = helia.libp2p
  let stopped: Promise<void> | undefined
  return {
    helia,
    libp2p,
    peerId: libp2p.peerId.toString(),
    multiaddrs: () => libp2p.getMultiaddrs().map((m) => m.toString()),
    servingBytes: () => serveAsRead.heldBytes(),
    stop() {
      stopped ??= (async () => {
        wantResend.stop()
        haveFirst?.stop()
        blockSend.stop()
        serveAsRead.stop()
        digests.stop()
        await helia.stop()
        await peerRecords?.stop()
        await closeStores()
      })()
      return stopped
    },
  }
}
