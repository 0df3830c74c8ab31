/**
 * The executor feed's saved state: its cursor (the next block to read) and every registration it
 * has applied (node → peer id), in one file written atomically, so a restart resumes from the
 * cursor with the directory as it was (the registrations before the cursor are not read again)
 * and a kill between two writes loses nothing: the cursor is never ahead of the registrations
 * saved with it.
 *
 * `<dataDir>/executor-feed.json`: `{ version: 1, chainId, accessController, next,
 * executors: [[address, peerIdHex], …] }`. A file of another chain or AccessController, or one
 * that does not parse, is ignored (the feed is a cache in front of `checkAccess`): the feed then
 * reads from its `startBlock` as on a first start.
 */
import { getAddress } from 'ethers'
import { writeFileAtomic } from '../store/fs-atomic.ts'
import { checkKeys, corrupt, readJsonFile } from '../store/json-file.ts'

export const FEED_STATE_FILE = 'executor-feed.json'

/** Largest state file read: ~130 bytes per registration, so ~120 000 registrations. */
const MAX_STATE_BYTES = 16 << 20

/** Whose chain the state belongs to. */
export interface FeedIdentity {
  chainId: bigint
  accessController: string
}

export interface FeedState {
  /** The next block to read. */
  next: number
  /** Registrations applied, by checksummed address: the peer id (multihash bytes). */
  executors: Map<string, Uint8Array>
}

const PEER_HEX = /^[0-9a-f]{2,256}$/

/**
 * Reads the saved state, or `undefined` when there is none or it belongs to another chain.
 * @throws {KeyStoreCorruptError} for a file that does not parse.
 */
export async function loadFeedState(
  file: string,
  identity: FeedIdentity,
): Promise<FeedState | undefined> {
  const obj = await readJsonFile(file, MAX_STATE_BYTES)
  if (obj === undefined) return undefined
  checkKeys(file, obj, ['version', 'chainId', 'accessController', 'next', 'executors'])
  if (obj.version !== 1) corrupt(file, 'unknown-version', { version: obj.version })
  if (
    obj.chainId !== identity.chainId.toString() ||
    obj.accessController !== identity.accessController
  ) {
    return undefined
  }
  if (typeof obj.next !== 'number' || !Number.isSafeInteger(obj.next) || obj.next < 0) {
    corrupt(file, 'bad-field', { field: 'next' })
  }
  if (!Array.isArray(obj.executors)) corrupt(file, 'bad-field', { field: 'executors' })
  const executors = new Map<string, Uint8Array>()
  for (const item of obj.executors as unknown[]) {
    const [address, peer] = Array.isArray(item) ? item : []
    if (typeof address !== 'string' || typeof peer !== 'string' || !PEER_HEX.test(peer)) {
      corrupt(file, 'bad-field', { field: 'executors' })
    }
    let checksummed: string
    try {
      checksummed = getAddress(address)
    } catch (cause) {
      corrupt(file, 'bad-field', { field: 'executors' }, cause)
    }
    executors.set(checksummed, Uint8Array.from(Buffer.from(peer, 'hex')))
  }
  return { next: obj.next, executors }
}

/** Writes the state atomically (temp file, fsync, rename, fsync of the directory). */
export async function saveFeedState(
  file: string,
  identity: FeedIdentity,
  state: FeedState,
): Promise<void> {
  const body = {
    version: 1,
    chainId: identity.chainId.toString(),
    accessController: identity.accessController,
    next: state.next,
    executors: [...state.executors].map(([a, p]) => [a, Buffer.from(p).toString('hex')]),
  }
  await writeFileAtomic(file, new TextEncoder().encode(`${JSON.stringify(body)}\n`))
}
