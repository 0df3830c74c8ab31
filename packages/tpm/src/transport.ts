/**
 * Transports that carry raw TPM 2.0 command bytes to a TPM and bring back the response,
 * chosen from a TCTI string the way tpm2-tss reads it:
 *
 * - `swtpm:host=…,port=…` (defaults `localhost`, 2321) or `swtpm:path=/…sock`: a stream
 *   socket to swtpm's server port, raw command bytes, **one connection per command**. swtpm
 *   serves one connection at a time, so a held connection would starve tpm2-tools (key
 *   provisioning, `tpm2_readpublic`); tpm2-tss's swtpm TCTI connects per command as well.
 * - `device:/dev/tpmrm0` (or `/dev/tpm0`, the default of `device:`): the kernel character
 *   device, opened per command (`/dev/tpm0` is exclusive), one `write` then one `read`.
 *
 * Anything else (`mssim:`, `tabrmd:`, …) has no direct transport: callers use tpm2-tools.
 */
import { open } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { openDeviceChannel, openSocketChannel, type TpmChannel } from './channel.ts'
import { TpmBusyError, TpmCommandError, TpmUnavailableError } from './errors.ts'
import { HEADER_LENGTH, MAX_RESPONSE_LENGTH, responseLength } from './frame.ts'
import { sendWithRetry } from './send.ts'

/** Sends one command and resolves with the complete response (the caller zeroes it). */
export interface TpmTransport {
  readonly kind: 'socket' | 'device'
  /** Where it connects, for logs and `describe()`: never secret. */
  readonly target: string
  send(command: Uint8Array): Promise<Uint8Array>
  /**
   * Opens a channel for a sequence of commands that must share one connection or open file
   * (a session on `/dev/tpmrm0`). Absent on a wrapper that only forwards `send`:
   * {@link withChannel} then falls back to `send` per command.
   */
  open?(): Promise<TpmChannel>
}

/**
 * Runs `body` with a sender over one channel of `transport` and closes it afterwards, whatever
 * happens. The sender retries the warnings the TPM asks to be retried (a refused command did
 * not touch the session, so the same bytes are valid again). A transport without `open` gets its own `send` (fine for swtpm, where sessions
 * outlive connections).
 */
export async function withChannel<T>(
  transport: TpmTransport,
  body: (send: (command: Uint8Array) => Promise<Uint8Array>) => Promise<T>,
): Promise<T> {
  if (transport.open === undefined) return body((command) => sendWithRetry(transport, command))
  const channel = await transport.open()
  try {
    return await body((command) => sendWithRetry(channel, command))
  } finally {
    await channel.close()
  }
}

export type DirectTarget =
  | { kind: 'socket'; host: string; port: number }
  | { kind: 'socket'; path: string }
  | { kind: 'device'; path: string }

/** Reads a TCTI string; `undefined` when the direct path cannot speak to it. */
export function parseDirectTcti(tcti: string): DirectTarget | undefined {
  const colon = tcti.indexOf(':')
  const name = (colon < 0 ? tcti : tcti.slice(0, colon)).toLowerCase()
  const conf = colon < 0 ? '' : tcti.slice(colon + 1)
  if (name === 'device') {
    const path = conf === '' ? '/dev/tpm0' : conf
    return path.startsWith('/') ? { kind: 'device', path } : undefined
  }
  if (name !== 'swtpm') return undefined
  let host = 'localhost'
  let port = 2321
  let path: string | undefined
  for (const pair of conf === '' ? [] : conf.split(',')) {
    const eq = pair.indexOf('=')
    if (eq < 0) return undefined
    const key = pair.slice(0, eq)
    const value = pair.slice(eq + 1)
    if (key === 'host' && value !== '') host = value
    else if (
      key === 'port' &&
      /^\d{1,5}$/.test(value) &&
      Number(value) >= 1 &&
      Number(value) <= 65535
    )
      port = Number(value)
    else if (key === 'path' && value.startsWith('/')) path = value
    else return undefined
  }
  return path === undefined ? { kind: 'socket', host, port } : { kind: 'socket', path }
}

function unavailable(reason: string, details: Record<string, unknown> = {}): TpmUnavailableError {
  return new TpmUnavailableError(
    reason === 'timeout' ? 'The TPM did not answer in time' : 'The TPM is not reachable',
    {
      details: { reason, ...details },
      hint:
        reason === 'timeout'
          ? 'Check that the TPM (or swtpm) is running and not wedged.'
          : 'Check the TCTI string and that the TPM device or swtpm is up.',
    },
  )
}

/** A stream-socket transport to swtpm's server port: connect, write, read one response, close. */
export function socketTransport(
  target: { host: string; port: number } | { path: string },
  timeoutMs: number,
): TpmTransport {
  const label = 'path' in target ? target.path : `${target.host}:${target.port}`
  return {
    kind: 'socket',
    target: label,
    open: () => openSocketChannel(target, timeoutMs),
    send(command) {
      return new Promise<Uint8Array>((resolve, reject) => {
        const chunks: Buffer[] = []
        let received = 0
        let expected = -1
        let settled = false
        const socket: Socket =
          'path' in target
            ? connect({ path: target.path })
            : connect({ host: target.host, port: target.port })
        socket.setNoDelay(true)
        const wipe = () => {
          for (const c of chunks) c.fill(0)
          chunks.length = 0
        }
        const finish = (err: unknown, response?: Uint8Array) => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          socket.destroy()
          wipe()
          if (response) resolve(response)
          else reject(err)
        }
        const timer = setTimeout(
          () => finish(unavailable('timeout', { target: label, timeoutMs })),
          timeoutMs,
        )
        socket.once('connect', () => socket.write(command))
        socket.on('data', (chunk: Buffer) => {
          if (settled) {
            chunk.fill(0)
            return
          }
          chunks.push(chunk)
          received += chunk.length
          if (expected < 0 && received >= 6) {
            try {
              expected = responseLength(Buffer.concat(chunks, 6))
            } catch (err) {
              finish(err)
              return
            }
          }
          if (expected < 0) return
          if (received > expected) {
            finish(
              new TpmCommandError('The TPM response is malformed', {
                details: {
                  reason: 'malformed-response',
                  why: 'trailing-bytes',
                  size: expected,
                  received,
                },
              }),
            )
          } else if (received === expected) {
            finish(undefined, new Uint8Array(Buffer.concat(chunks, expected)))
          }
        })
        socket.once('end', () =>
          finish(
            unavailable('truncated', {
              target: label,
              received,
              expected: Math.max(expected, HEADER_LENGTH),
            }),
          ),
        )
        socket.once('error', (err: NodeJS.ErrnoException) =>
          finish(unavailable('tcti', { target: label, errno: err.code })),
        )
        socket.once('close', () => finish(unavailable('tcti', { target: label, received })))
      })
    },
  }
}

/**
 * A character-device transport: open, write the command, read the response, close. A TPM
 * character device answers one `read` with the whole response. The kernel enforces the TPM's
 * own command timeouts; `timeoutMs` bounds how long the caller waits (a blocked read keeps
 * the file open until the kernel gives up, then it is closed).
 */
export function deviceTransport(path: string, timeoutMs: number): TpmTransport {
  async function exchange(command: Uint8Array, late: () => boolean): Promise<Uint8Array> {
    let handle: Awaited<ReturnType<typeof open>>
    try {
      handle = await open(path, 'r+')
    } catch (err) {
      throw deviceError(err as NodeJS.ErrnoException, path)
    }
    const buffer = Buffer.alloc(MAX_RESPONSE_LENGTH)
    try {
      const { bytesWritten } = await handle.write(command, 0, command.length, null)
      if (bytesWritten !== command.length)
        throw unavailable('tcti', { target: path, why: 'short-write' })
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null)
      if (late()) return new Uint8Array(0)
      if (bytesRead < HEADER_LENGTH)
        throw unavailable('truncated', { target: path, received: bytesRead })
      const size = responseLength(buffer.subarray(0, bytesRead))
      if (size !== bytesRead) {
        throw new TpmCommandError('The TPM response is malformed', {
          details: { reason: 'malformed-response', why: 'length', size, received: bytesRead },
        })
      }
      return new Uint8Array(buffer.subarray(0, bytesRead))
    } catch (err) {
      if (err instanceof TpmUnavailableError || err instanceof TpmCommandError) throw err
      throw deviceError(err as NodeJS.ErrnoException, path)
    } finally {
      buffer.fill(0)
      await handle.close().catch(() => undefined)
    }
  }
  return {
    kind: 'device',
    target: path,
    open: () => openDeviceChannel(path, timeoutMs),
    send(command) {
      return new Promise<Uint8Array>((resolve, reject) => {
        let timedOut = false
        const timer = setTimeout(() => {
          timedOut = true
          reject(unavailable('timeout', { target: path, timeoutMs }))
        }, timeoutMs)
        exchange(command, () => timedOut).then(
          (response) => {
            clearTimeout(timer)
            if (timedOut) response.fill(0)
            else resolve(response)
          },
          (err: unknown) => {
            clearTimeout(timer)
            if (!timedOut) reject(err)
          },
        )
      })
    },
  }
}

function deviceError(err: NodeJS.ErrnoException, path: string): Error {
  if (err?.code === 'EBUSY') {
    return new TpmBusyError('The TPM device is in use by another process', {
      details: { reason: 'device-busy', target: path },
      hint: 'Use the resource manager device (device:/dev/tpmrm0) or stop the other user.',
    })
  }
  return unavailable('tcti', { target: path, errno: err?.code })
}

/** The direct transport for a TCTI, or `undefined` when only tpm2-tools can reach it. */
export function transportFor(tcti: string, timeoutMs: number): TpmTransport | undefined {
  const target = parseDirectTcti(tcti)
  if (target === undefined) return undefined
  if (target.kind === 'device') return deviceTransport(target.path, timeoutMs)
  return socketTransport('path' in target ? { path: target.path } : target, timeoutMs)
}
