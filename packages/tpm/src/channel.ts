/**
 * A channel: several TPM commands over ONE connection (swtpm socket) or ONE open file
 * (`/dev/tpmrm0`). Sessions need it: the kernel resource manager flushes a file's sessions
 * when the file is closed, so a session started on one `open` would be gone on the next. The
 * same channel runs on swtpm (which would serve no other client while it is open), so a
 * channel is held only for one short command sequence and then closed.
 */
import { open } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { TpmBusyError, TpmCommandError, TpmUnavailableError } from './errors.ts'
import { HEADER_LENGTH, MAX_RESPONSE_LENGTH, responseLength } from './frame.ts'

/** Commands over one held connection or device file; `close()` is idempotent. */
export interface TpmChannel {
  send(command: Uint8Array): Promise<Uint8Array>
  close(): Promise<void>
}

function unavailable(reason: string, details: Record<string, unknown>): TpmUnavailableError {
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

/** Opens a held socket to swtpm's server port. */
export function openSocketChannel(
  target: { host: string; port: number } | { path: string },
  timeoutMs: number,
): Promise<TpmChannel> {
  const label = 'path' in target ? target.path : `${target.host}:${target.port}`
  return new Promise((resolve, reject) => {
    const socket: Socket =
      'path' in target
        ? connect({ path: target.path })
        : connect({ host: target.host, port: target.port })
    socket.setNoDelay(true)
    let pending:
      | {
          chunks: Buffer[]
          received: number
          expected: number
          resolve: (r: Uint8Array) => void
          reject: (e: unknown) => void
          timer: NodeJS.Timeout
        }
      | undefined
    let broken: unknown
    const fail = (err: unknown) => {
      broken ??= err
      const p = pending
      pending = undefined
      if (p) {
        clearTimeout(p.timer)
        for (const c of p.chunks) c.fill(0)
        p.reject(err)
      }
      socket.destroy()
    }
    const connectTimer = setTimeout(() => {
      fail(unavailable('timeout', { target: label, timeoutMs }))
      reject(broken)
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(connectTimer)
      resolve(channel)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(connectTimer)
      const e = unavailable('tcti', { target: label, errno: err.code })
      fail(e)
      reject(e)
    })
    socket.once('close', () => fail(unavailable('tcti', { target: label, why: 'closed' })))
    socket.on('data', (chunk: Buffer) => {
      const p = pending
      if (!p) {
        chunk.fill(0)
        fail(
          new TpmCommandError('The TPM response is malformed', {
            details: { reason: 'malformed-response', why: 'unsolicited-bytes' },
          }),
        )
        return
      }
      p.chunks.push(chunk)
      p.received += chunk.length
      if (p.expected < 0 && p.received >= 6) {
        try {
          p.expected = responseLength(Buffer.concat(p.chunks, 6))
        } catch (err) {
          fail(err)
          return
        }
      }
      if (p.expected < 0 || p.received < p.expected) return
      if (p.received > p.expected) {
        fail(
          new TpmCommandError('The TPM response is malformed', {
            details: { reason: 'malformed-response', why: 'trailing-bytes', size: p.expected },
          }),
        )
        return
      }
      pending = undefined
      clearTimeout(p.timer)
      const response = new Uint8Array(Buffer.concat(p.chunks, p.expected))
      for (const c of p.chunks) c.fill(0)
      p.resolve(response)
    })
    const channel: TpmChannel = {
      send(command) {
        return new Promise((res, rej) => {
          if (broken !== undefined) return rej(broken)
          if (pending) {
            return rej(
              new TpmCommandError('A TPM channel sends one command at a time', {
                details: { reason: 'channel-busy' },
              }),
            )
          }
          const timer = setTimeout(
            () => fail(unavailable('timeout', { target: label, timeoutMs })),
            timeoutMs,
          )
          pending = { chunks: [], received: 0, expected: -1, resolve: res, reject: rej, timer }
          socket.write(command)
        })
      },
      async close() {
        broken ??= unavailable('tcti', { target: label, why: 'channel-closed' })
        socket.destroy()
      },
    }
  })
}

/** Opens the TPM character device once for several write/read pairs. */
export async function openDeviceChannel(path: string, timeoutMs: number): Promise<TpmChannel> {
  let handle: Awaited<ReturnType<typeof open>>
  try {
    handle = await open(path, 'r+')
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e?.code === 'EBUSY') {
      throw new TpmBusyError('The TPM device is in use by another process', {
        details: { reason: 'device-busy', target: path },
        hint: 'Use the resource manager device (device:/dev/tpmrm0) or stop the other user.',
      })
    }
    throw unavailable('tcti', { target: path, errno: e?.code })
  }
  let closed = false
  let busy = false
  const buffer = Buffer.alloc(MAX_RESPONSE_LENGTH)
  async function exchange(command: Uint8Array): Promise<Uint8Array> {
    const { bytesWritten } = await handle.write(command, 0, command.length, null)
    if (bytesWritten !== command.length)
      throw unavailable('tcti', { target: path, why: 'short-write' })
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, null)
    try {
      if (bytesRead < HEADER_LENGTH)
        throw unavailable('truncated', { target: path, received: bytesRead })
      const size = responseLength(buffer.subarray(0, bytesRead))
      if (size !== bytesRead) {
        throw new TpmCommandError('The TPM response is malformed', {
          details: { reason: 'malformed-response', why: 'length', size, received: bytesRead },
        })
      }
      return new Uint8Array(buffer.subarray(0, bytesRead))
    } finally {
      buffer.fill(0)
    }
  }
  const channel: TpmChannel = {
    async send(command) {
      if (closed) throw unavailable('tcti', { target: path, why: 'channel-closed' })
      if (busy) {
        throw new TpmCommandError('A TPM channel sends one command at a time', {
          details: { reason: 'channel-busy' },
        })
      }
      busy = true
      let timer: NodeJS.Timeout | undefined
      try {
        return await Promise.race([
          exchange(command),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              // A read the kernel never answers: close the file so nothing else uses it.
              void channel.close()
              reject(unavailable('timeout', { target: path, timeoutMs }))
            }, timeoutMs)
          }),
        ])
      } catch (err) {
        if (err instanceof TpmUnavailableError || err instanceof TpmCommandError) throw err
        throw unavailable('tcti', { target: path, errno: (err as NodeJS.ErrnoException)?.code })
      } finally {
        clearTimeout(timer)
        busy = false
      }
    },
    async close() {
      if (closed) return
      closed = true
      await handle.close().catch(() => undefined)
    },
  }
  return channel
}
