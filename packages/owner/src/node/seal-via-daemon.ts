/**
 * The CLI's side of the seal socket (ADR 0107): when `pi-node serve` runs on the data folder,
 * `pi-node seal` of a data file asks it to seal, instead of starting a second owner node (the
 * daemon has its bundle, keys, chain client and lane workers up: ~0.2–0.3 s less a seal). Light.
 */
import { open } from 'node:fs/promises'
import { DigicapError, toHex } from '@digicap/capsule-core/light'
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
 *   one the daemon takes (no policy, a code or image capsule), no daemon serves this folder,
 *   or it cannot open the file (`input-unreadable`): seal in this process then.
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
  // Opened here and kept open until the answer: the daemon reads this very file (same inode),
  // through this process's descriptor. A file this process cannot open is the seal's own error.
  const fh = await open(file, 'r').catch(() => undefined)
  if (fh === undefined) return undefined
  try {
    const { dev, ino } = await fh.stat({ bigint: true })
    const request: SealRequest = {
      input: { pid: process.pid, fd: fh.fd, dev: dev.toString(), ino: ino.toString() },
      options: {
        policy: options.policy,
        receivers: (options.receivers ?? []).map((r) => ({ ...r, publicKey: toHex(r.publicKey) })),
        ...definedNumbers(options),
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
      // The daemon could not open the file (another uid, a descriptor it may not follow):
      // nothing was sealed, so this process seals it itself.
      if (err instanceof SealSocketError && err.details.reason === 'input-unreadable')
        return undefined
      throw err
    })
    return result as SealResult | undefined
  } finally {
    await fh.close()
  }
}

function definedNumbers(o: SealViaDaemonOptions) {
  const out: { memoryLimit?: number; timeLimit?: number; announceTimeoutMs?: number } = {}
  if (o.memoryLimit !== undefined) out.memoryLimit = o.memoryLimit
  if (o.timeLimit !== undefined) out.timeLimit = o.timeLimit
  if (o.announceTimeoutMs !== undefined) out.announceTimeoutMs = o.announceTimeoutMs
  return out
}
