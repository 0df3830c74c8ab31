/**
 * The daemon's side of the seal socket (ADR 0107): `pi-node serve` seals data files for
 * `pi-node seal`, one at a time, with the node it already runs. The socket, token and lock are
 * `@digicap/cli-kit/job-socket`'s; this file says what a seal request holds, how the daemon
 * reaches the CLI's file, and how it announces (through its own node, not a second one).
 */
import { constants } from 'node:fs'
import { type FileHandle, open, stat } from 'node:fs/promises'
import { parseReceiver } from '@digicap/capsule-core/light'
import { definedFields } from '@digicap/cli-kit'
import {
  type JobSocketServer,
  type ServeJobSocketInit,
  serveJobSocket,
} from '@digicap/cli-kit/job-socket'
import type { DigicapNode } from '@digicap/p2p'
import type { Announcer } from '../announce/types.ts'
import type { SealOptions, SealResult } from './seal.ts'
import {
  MAX_SEAL_REQUEST_BYTES,
  SEAL_SOCKET_NAME,
  SEAL_SOCKET_VERSION,
  type SealInputRef,
  SealSocketError,
} from './seal-socket-protocol.ts'

interface SealJob {
  input: SealInputRef
  options: Omit<SealOptions, 'file' | 'onProgress'>
}

const positive = (v: unknown) => v === undefined || (Number.isSafeInteger(v) && (v as number) > 0)

/** A plain object with no key but `keys` (a field the daemon does not know is not ignored). */
function only(v: unknown, keys: readonly string[]): v is Record<string, unknown> {
  return (
    v !== null &&
    typeof v === 'object' &&
    !Array.isArray(v) &&
    Object.keys(v).every((k) => keys.includes(k))
  )
}

/**
 * The request's fields, checked one by one; undefined when one is not of its type, or when the
 * request holds a field this daemon does not know (a code or image seal is not handed over).
 */
function sealJob(req: Record<string, unknown>): SealJob | undefined {
  const input = req.input
  const o = req.options
  if (!only(req, ['v', 'token', 'input', 'options']) || !only(input, ['pid', 'fd', 'dev', 'ino']))
    return undefined
  if (!only(o, ['policy', 'receivers', 'memoryLimit', 'timeLimit', 'announceTimeoutMs']))
    return undefined
  const { pid, fd, dev, ino } = input
  if (!(Number.isSafeInteger(pid) && (pid as number) > 0)) return undefined
  if (!(Number.isSafeInteger(fd) && (fd as number) >= 0)) return undefined
  const decimal = (v: unknown) => typeof v === 'string' && /^[0-9]{1,20}$/.test(v)
  if (!decimal(dev) || !decimal(ino)) return undefined
  if (typeof o.policy !== 'string' || o.policy.length === 0 || o.policy.length > 16_384)
    return undefined
  const receivers = o.receivers ?? []
  if (!Array.isArray(receivers) || receivers.length > 32) return undefined
  if (!positive(o.memoryLimit) || !positive(o.timeLimit) || !positive(o.announceTimeoutMs))
    return undefined
  let parsed: SealOptions['receivers']
  try {
    // As the command line spells them (`<hex>[@peerId]`), through the same parser.
    parsed = receivers.map((r: unknown) => {
      if (!only(r, ['publicKey', 'peerId']) || typeof r.publicKey !== 'string')
        throw new TypeError('receiver')
      if (r.peerId !== undefined && typeof r.peerId !== 'string') throw new TypeError('receiver')
      return parseReceiver(`${r.publicKey}${r.peerId !== undefined ? `@${r.peerId}` : ''}`)
    })
  } catch {
    return undefined
  }
  return {
    input: { pid: pid as number, fd: fd as number, dev: dev as string, ino: ino as string },
    options: {
      policy: o.policy,
      runtime: 'data',
      receivers: parsed,
      ...definedFields({
        memoryLimit: o.memoryLimit as number | undefined,
        timeLimit: o.timeLimit as number | undefined,
        announceTimeoutMs: o.announceTimeoutMs as number | undefined,
      }),
    },
  }
}

const inputError = (shortMessage: string, reason: string, details = {}) =>
  new SealSocketError(shortMessage, {
    details: { reason, ...details },
    hint:
      reason === 'input-not-a-file'
        ? 'Seal a regular file (`pi-node seal` checks before it hands one over).'
        : 'The CLI seals it itself.',
  })

/**
 * The CLI's file, opened through its descriptor (`/proc/<pid>/fd/<fd>`): the kernel allows it
 * to the same uid only, and resolves it through the CLI's mounts (the unit's `ProtectHome`
 * hides them from the daemon's). It must be a regular file (checked before it is opened: a FIFO
 * with no writer would block the open, and every seal queued behind it) and the inode the CLI
 * saw: a pid reused or a descriptor closed and reopened since is refused. Never the daemon's
 * own descriptors: a token holder could otherwise seal a file only the daemon has open.
 */
async function openCliInput(input: SealInputRef): Promise<FileHandle> {
  if (input.pid === process.pid) throw inputError('Not a CLI process', 'input-unreadable')
  const link = `/proc/${input.pid}/fd/${input.fd}`
  const same = (st: { dev: bigint; ino: bigint }) =>
    st.dev.toString() === input.dev && st.ino.toString() === input.ino
  const before = await stat(link, { bigint: true }).catch((err: { code?: string }) => {
    throw inputError('The daemon cannot open the file to seal', 'input-unreadable', {
      error: err?.code ?? 'UNKNOWN',
    })
  })
  if (!before.isFile()) throw inputError('The input is not a regular file', 'input-not-a-file')
  if (!same(before)) throw inputChanged()
  let fh: FileHandle
  try {
    // Non-blocking and no controlling terminal: whatever the link names by now, opening it
    // neither waits nor changes it.
    fh = await open(link, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (err) {
    throw inputError('The daemon cannot open the file to seal', 'input-unreadable', {
      error: (err as { code?: string }).code ?? 'UNKNOWN',
    })
  }
  try {
    const st = await fh.stat({ bigint: true })
    if (!st.isFile()) throw inputError('The input is not a regular file', 'input-not-a-file')
    if (!same(st)) throw inputChanged()
    return fh
  } catch (err) {
    await fh.close()
    throw err
  }
}

const inputChanged = () =>
  new SealSocketError('The file the daemon opened is not the one the CLI named', {
    details: { reason: 'input-changed' },
    hint: 'Seal again.',
  })

/**
 * Announces on the daemon's own node, to the capsule topic's subscribers: a running daemon is
 * connected already, so it waits for one only as long as the CLI asked (`--announce-timeout-ms`;
 * none by default, where a fresh node must wait).
 */
function nodeAnnouncer(node: Pick<DigicapNode, 'libp2p'>, timeoutMs: number): Announcer {
  return {
    async announce(ann) {
      try {
        // Loaded here: `@digicap/owner/node` exports this file, and a one-shot command that
        // imports the entry must not load libp2p for it (the daemon has it loaded already).
        const { announceCapsule } = await import('@digicap/p2p')
        const { recipients } = await announceCapsule(node, ann, { timeoutMs })
        return { ok: true, recipients }
      } catch (err) {
        return { ok: false, reason: String((err as { code?: string }).code ?? 'UNKNOWN') }
      }
    },
  }
}

/** The seal socket's options: the job socket's, and each seal's start and end for the log. */
export interface ServeSealSocketInit extends ServeJobSocketInit {
  /** A seal's turn began (`started`: it was waiting behind others until then) or ended. */
  readonly onTurn?:
    | ((e: { type: 'started' | 'ended'; pid: number; ok?: boolean }) => void)
    | undefined
}

/**
 * Serves `pi-node seal`'s hand-off on `<dataDir>/seal.sock` with `pi` (the daemon's owner
 * node) and its running `node`. Seals run one after another (one lane pool, ADR 0104); the
 * others wait their turn, up to `maxConnections` at once.
 *
 * @throws {SealSocketError} `in-use` (another daemon holds the folder's seal socket) or
 *   `path-too-long`.
 * @example
 * ```ts
 * const sock = await serveSealSocket(pi, running.node, { dataDir: config.dataDir })
 * // … on stop: await sock.close()
 * ```
 */
export async function serveSealSocket(
  pi: { seal(options: SealOptions): Promise<SealResult> },
  node: Pick<DigicapNode, 'libp2p'>,
  init: ServeSealSocketInit,
): Promise<JobSocketServer> {
  let turn: Promise<unknown> = Promise.resolve()
  return serveJobSocket<SealJob>(
    {
      name: SEAL_SOCKET_NAME,
      lockPrefix: 'digicap-pi-node-seal',
      version: SEAL_SOCKET_VERSION,
      code: 'SEAL_SOCKET',
      maxRequestBytes: MAX_SEAL_REQUEST_BYTES,
      error: (shortMessage, options) => new SealSocketError(shortMessage, options),
      hints: {
        inUse: 'Stop the other `pi-node serve` of this data folder first.',
        pathTooLong:
          'A data folder whose seal.sock path is at most 107 bytes gets the hand-off; without it `pi-node seal` seals in its own process.',
      },
      parse: sealJob,
      about: (job) => ({ pid: String(job.input.pid) }),
      run(job, { signal, send }) {
        // One seal at a time: the next starts when the one before has ended, either way.
        const mine = turn.then(async () => {
          // The daemon is stopping (or the CLI left) while this one waited: nothing was sealed.
          if (signal.aborted) {
            throw new SealSocketError('The daemon is stopping', {
              details: { reason: 'stopping' },
              hint: 'The CLI seals it itself.',
            })
          }
          const fh = await openCliInput(job.input)
          init.onTurn?.({ type: 'started', pid: job.input.pid })
          let ok = false
          try {
            const { announceTimeoutMs, ...options } = job.options
            const result = await pi.seal({
              ...options,
              // The daemon's own descriptor of the same inode: the seal goes on if the CLI
              // goes away (it is registered or fails as a one-shot seal would).
              file: `/proc/self/fd/${fh.fd}`,
              announcer: nodeAnnouncer(node, announceTimeoutMs ?? 0),
              onProgress: (phase, done, total) =>
                send({ type: 'progress', progress: { phase, done, total } }),
            })
            ok = true
            return { ...result }
          } finally {
            await fh.close()
            init.onTurn?.({ type: 'ended', pid: job.input.pid, ok })
          }
        })
        turn = mine.catch(() => {})
        return mine
      },
    },
    init,
  )
}
