/**
 * The grant watcher: follows `AccessGranted` logs of the configured AccessController for the
 * capsules in the key store, `confirmations` blocks deep (and with `finality`, at or below the
 * chain's `safe` / `finalized` block: ADR 0082), in block ranges (`eth_getLogs`).
 *
 * - The cursor (last processed block and its hash, plus chain id and contract) is written
 *   atomically to `<dataDir>/grant-cursor.json` after every range whose grants were handed
 *   over, so a restart resumes where it stopped; a cursor for another chain or contract is
 *   refused.
 * - Before each range the cursor block's hash is compared with the chain's: a mismatch means a
 *   reorg deeper than the confirmation depth, and the watcher rewinds `rewindBlocks` and
 *   re-scans (the release journal makes a grant seen twice harmless).
 * - A range is handed over only when its last block has the same hash before and after its logs
 *   are read; else it is read again (a reorg landed meanwhile), so the cursor never moves onto a
 *   branch whose grants were not read.
 * - A range's logs are complete: the client reads its last blocks by block hash, which an RPC
 *   whose log index lags answers with an error, not with none (ADR 0085); the scan then throws
 *   and the next poll reads the range again.
 * - `start()` checks `eth_chainId` against the configured chain id first.
 */
import { join } from 'node:path'
import type { BlockRef, ChainClient, GrantLog } from '../chain/chain-client.ts'
import { confirmedBlock, type Finality } from '../chain/confirmed-block.ts'
import { ChainMismatchError, KeyguardStateError } from '../errors.ts'
import { ensureDir, writeFileAtomic } from '../store/fs-atomic.ts'
import { checkKeys, corrupt, readJsonFile } from '../store/json-file.ts'
import type { KeyStore } from '../store/key-store.ts'
import type { Logger } from '../types.ts'

export interface GrantWatcherInit {
  /** The keyguard's data directory (the cursor file lives there). */
  dataDir: string
  /** Blocks a log must be buried under before it counts. 0 on anvil. */
  confirmations: number
  /**
   * `safe` / `finalized`: a log counts only once its block is also at or below the chain's block
   * of that tag (ADR 0082). Default `latest` (depth only).
   */
  finality?: Finality
  /** First block to scan when there is no cursor (the deployment block). Default 0. */
  startBlock?: number
  /** Largest `eth_getLogs` range. Default 2000. */
  batchBlocks?: number
  /** Poll period, ms. Default 1000. */
  pollIntervalMs?: number
  /** How far to go back when the cursor block was reorged away. Default 64. */
  rewindBlocks?: number
}

/** What the watcher reports (through `onEvent`). */
export type GrantWatcherEvent =
  | { type: 'reorg'; at: number; rewoundTo: number }
  | { type: 'foreign-log'; address: string; grantId: string }
  | { type: 'poll-error'; error: unknown }

export interface GrantWatcherComponents {
  chain: ChainClient
  keyStore: Pick<KeyStore, 'list'>
  /** Takes one confirmed grant log. Throw only for transient failures (the range is re-scanned). */
  onGrant: (log: GrantLog) => Promise<void>
  onEvent?: (event: GrantWatcherEvent) => void
  logger?: Logger
}

export interface GrantWatcher {
  /**
   * Checks the chain id, loads the cursor and starts polling.
   * @throws {ChainMismatchError} if `eth_chainId` differs from the configured chain id, or the
   *   cursor file belongs to another chain or contract.
   * @throws {KeyguardStateError} with `finality` set, when the RPCs do not report that block.
   */
  start(): Promise<void>
  /** Stops polling and waits for the current poll. */
  stop(): Promise<void>
  /** One scan up to the confirmed head (also what the timer runs). Returns the logs handed over. */
  poll(): Promise<number>
  /** The last processed block, if any. */
  cursor(): BlockRef | undefined
  /** The newest head seen. */
  head(): number | undefined
}

const CURSOR_FILE = 'grant-cursor.json'
/** Ranges whose blocks moved while being read, scanned again within one poll at most. */
const MAX_MOVED = 3

/**
 * Builds a grant watcher.
 *
 * @example
 * ```ts
 * const watcher = grantWatcher({ dataDir, confirmations: 2 })({ chain, keyStore, onGrant })
 * await watcher.start()
 * ```
 */
export function grantWatcher(init: GrantWatcherInit) {
  return (components: GrantWatcherComponents): GrantWatcher => {
    const { chain, keyStore, onGrant } = components
    const confirmed = confirmedBlock(
      {
        confirmations: init.confirmations,
        ...(init.finality === undefined ? {} : { finality: init.finality }),
      },
      chain,
    )
    const batch = init.batchBlocks ?? 2000
    const interval = init.pollIntervalMs ?? 1000
    const rewind = init.rewindBlocks ?? 64
    const startBlock = init.startBlock ?? 0
    const file = join(init.dataDir, CURSOR_FILE)
    let cursor: BlockRef | undefined
    let head: number | undefined
    let timer: NodeJS.Timeout | undefined
    let running = false
    let current: Promise<number> | undefined

    async function loadCursor(): Promise<void> {
      const obj = await readJsonFile(file)
      if (obj === undefined) return
      checkKeys(file, obj, ['version', 'chainId', 'accessController', 'number', 'hash'], [])
      if (obj.version !== 1) corrupt(file, 'unknown-version', { version: obj.version })
      if (
        obj.chainId !== chain.chainId.toString() ||
        obj.accessController !== chain.accessController
      ) {
        throw new ChainMismatchError('The grant cursor belongs to another chain or contract', {
          details: { file, chainId: obj.chainId, accessController: obj.accessController },
          hint: 'Use a separate data directory per chain and AccessController.',
        })
      }
      if (
        typeof obj.number !== 'number' ||
        !Number.isSafeInteger(obj.number) ||
        obj.number < 0 ||
        typeof obj.hash !== 'string' ||
        !/^0x[0-9a-f]{64}$/.test(obj.hash)
      ) {
        corrupt(file, 'bad-field', { field: 'number/hash' })
      }
      cursor = { number: obj.number, hash: obj.hash }
    }

    async function saveCursor(ref: BlockRef): Promise<void> {
      const body = {
        version: 1,
        chainId: chain.chainId.toString(),
        accessController: chain.accessController,
        number: ref.number,
        hash: ref.hash,
      }
      await writeFileAtomic(file, new TextEncoder().encode(`${JSON.stringify(body)}\n`))
      cursor = ref
    }

    async function scan(): Promise<number> {
      let handed = 0
      let moved = 0
      for (;;) {
        const latest = await chain.blockNumber()
        head = latest
        const safe = await confirmed(latest)
        if (cursor !== undefined) {
          const onChain = await chain.block(cursor.number)
          if (onChain === undefined || onChain.hash !== cursor.hash) {
            const to = Math.max(startBlock - 1, cursor.number - rewind)
            components.onEvent?.({ type: 'reorg', at: cursor.number, rewoundTo: to })
            components.logger?.warn('grant watcher: reorg below the confirmation depth', {
              at: cursor.number,
              rewoundTo: to,
            })
            const ref = to >= 0 ? await chain.block(to) : undefined
            cursor = ref
            if (ref !== undefined) await saveCursor(ref)
            continue
          }
        }
        const from = cursor === undefined ? startBlock : cursor.number + 1
        if (safe < from) return handed
        const to = Math.min(safe, from + batch - 1)
        const capsules = await keyStore.list()
        // The range's last block before and after its logs: a reorg in between (it changes that
        // block's hash) would leave the cursor on the new branch with the old branch's logs, and
        // the new branch's grants in the range never scanned.
        const before = await chain.block(to)
        if (before === undefined) return handed
        const logs = await chain.grantLogs(from, to, capsules)
        const ref = await chain.block(to)
        if (ref === undefined) return handed
        if (ref.hash !== before.hash) {
          if (++moved > MAX_MOVED) return handed
          continue
        }
        for (const log of logs) {
          if (log.address !== chain.accessController) {
            components.onEvent?.({
              type: 'foreign-log',
              address: log.address,
              grantId: log.grantId,
            })
            continue
          }
          await onGrant(log)
          handed++
        }
        await saveCursor(ref)
        if (to >= safe) return handed
      }
    }

    const poll = (): Promise<number> => {
      // One scan at a time: a second caller waits for the running one, then scans again.
      const next = (current ?? Promise.resolve(0)).catch(() => 0).then(scan)
      current = next
      return next
    }

    const tick = (): void => {
      if (!running) return
      poll()
        .catch((error: unknown) => {
          components.onEvent?.({ type: 'poll-error', error })
          components.logger?.warn('grant watcher: poll failed', {
            code: (error as { code?: string }).code,
          })
        })
        .finally(() => {
          if (running) timer = setTimeout(tick, interval)
        })
    }

    return {
      async start() {
        if (running) throw new KeyguardStateError('The grant watcher is running')
        const remote = await chain.remoteChainId()
        if (remote !== chain.chainId) {
          throw new ChainMismatchError('The RPC serves another chain', {
            details: { expected: chain.chainId.toString(), got: remote.toString() },
            hint: 'Check the RPC URL(s) and the configured chain id.',
          })
        }
        if ((init.finality ?? 'latest') !== 'latest') {
          // A chain or RPC without the block tag would fail every poll: say so once, now.
          try {
            await confirmed(0)
          } catch (err) {
            throw new KeyguardStateError(`The RPC does not report the ${init.finality} block`, {
              details: { finality: init.finality },
              hint: 'Use RPCs that answer that block tag, or finality latest with enough confirmations for this chain.',
              cause: err,
            })
          }
        }
        await ensureDir(init.dataDir)
        await loadCursor()
        running = true
        tick()
      },
      async stop() {
        running = false
        if (timer !== undefined) clearTimeout(timer)
        await current?.catch(() => undefined)
      },
      poll,
      cursor: () => cursor,
      head: () => head,
    }
  }
}
