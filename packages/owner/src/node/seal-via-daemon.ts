/**
 * The CLI's side of the seal socket (ADR 0107): when `pi-node serve` runs on the data folder,
 * `pi-node seal` of a data file asks it to seal, instead of starting a second owner node (the
 * daemon has its bundle, keys and chain client up: a 1 MiB seal took 266 ms against 428). Light.
 */
import { constants } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { DigicapError, toHex } from '@digicap/capsule-core/light'
import { definedFields } from '@digicap/cli-kit'
import { askDaemon } from '@digicap/cli-kit/job-socket'
import type { SealResult } from './seal.ts'
import {
  MAX_SEAL_ANSWER_BYTES,
  SEAL_SOCKET_NAME,
  SEAL_SOCKET_VERSION,
  type SealRequest,
  SealSocketError,
} from './seal-socket-protocol.ts'

/** The fields of `SealOptions` a hand-off takes (the rest must be absent, or it is not handed). */
export interface SealViaDaemonOptions {
  file: string
  policy: string
  runtime?: string
  entry?: string
  code?: string
  image?: string
  receivers?: readonly { publicKey: Uint8Array; peerId?: string }[]
  memoryLimit?: number
  timeLimit?: number
  announceTimeoutMs?: number
  onProgress?: (phase: string, done: number, total: number) => void
}

/**
 * Hands the seal of a data file to the daemon serving `dataDir`.
 * @returns the daemon's seal result (`SealResult` as JSON), or undefined when the seal is not
 *   one the daemon takes (no policy, a code or image capsule, not a regular file), no daemon
 *   serves this folder, or it refused with nothing sealed for a reason this process can do
 *   better (`input-unreadable`, `busy`, `stopping`, `timeout`, `version`): seal here then. The
 *   daemon seals with its own configuration (an RPC URL set for the CLI alone is not used).
 * @throws the seal's typed error as the daemon reported it (same `code`, `details`, `hint`),
 *   or {@link SealSocketError} when the daemon refused the request or went away mid-seal.
 * @example
 * ```ts
 * const r = await sealViaDaemon(dataDir, { file: 'photo.jpg', policy: 'maxRuns(3)' })
 * ?? await pi.seal({ file: 'photo.jpg', policy: 'maxRuns(3)' })
 * ```
 */
export async function sealViaDaemon(
  dataDir: string,
  options: SealViaDaemonOptions,
): Promise<SealResult | undefined> {
  const { file, runtime, onProgress } = options
  if (options.policy === '' || (runtime !== undefined && runtime !== 'data')) return undefined
  if (options.entry !== undefined || options.code !== undefined || options.image !== undefined)
    return undefined
  // Only a regular file is handed over, checked before it is opened (a FIFO with no writer
  // would block the open; a device may act on it). Anything else, and a file this process
  // cannot open, is the seal's own error, given by the seal in this process.
  const before = await stat(file).catch(() => undefined)
  if (!before?.isFile()) return undefined
  // Opened here (non-blocking, no controlling terminal: whatever the name is by now) and kept
  // open until the answer: the daemon reads this very file, through this process's descriptor.
  const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY).catch(
    () => undefined,
  )
  if (fh === undefined) return undefined
  try {
    const st = await fh.stat({ bigint: true })
    if (!st.isFile()) return undefined
    const { dev, ino } = st
    const request: SealRequest = {
      input: { pid: process.pid, fd: fh.fd, dev: dev.toString(), ino: ino.toString() },
      options: {
        policy: options.policy,
        receivers: (options.receivers ?? []).map((r) => ({ ...r, publicKey: toHex(r.publicKey) })),
        ...definedFields({
          memoryLimit: options.memoryLimit,
          timeLimit: options.timeLimit,
          announceTimeoutMs: options.announceTimeoutMs,
        }),
      },
    }
    const result = await askDaemon(
      {
        dataDir,
        name: SEAL_SOCKET_NAME,
        version: SEAL_SOCKET_VERSION,
        maxAnswerBytes: MAX_SEAL_ANSWER_BYTES,
        error: (code, shortMessage, opts) =>
          code === undefined || code === 'SEAL_SOCKET'
            ? new SealSocketError(shortMessage, opts)
            : new DigicapError(code, shortMessage, opts),
        closedHint:
          'See the daemon’s log (`journalctl -u pi-node`); `pi-node seal --no-daemon` seals without it. Whether the capsule was registered: `pi-node status`.',
      },
      { ...request },
      {
        onProgress: (p) => onProgress?.(String(p.phase), Number(p.done) || 0, Number(p.total) || 0),
      },
    ).catch((err: unknown) => {
      // Refusals that mean nothing was sealed and that this process can do better: the daemon
      // could not open the file, is busy or stopping, timed the request out, or speaks another
      // version (the CLI upgraded before serve restarted). A wrong token, a request it found
      // malformed, or a daemon gone mid-seal are errors.
      const reason = err instanceof SealSocketError ? String(err.details.reason) : undefined
      if (reason !== undefined && SEAL_HERE_ON.has(reason)) return undefined
      throw err
    })
    return result as SealResult | undefined
  } finally {
    await fh.close()
  }
}

/** The daemon's refusals after which the CLI seals in its own process. */
const SEAL_HERE_ON = new Set(['input-unreadable', 'busy', 'stopping', 'timeout', 'version'])
