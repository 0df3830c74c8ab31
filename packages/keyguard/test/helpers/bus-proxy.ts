/**
 * A man in the middle on the TPM bus, for fault injection: a loopback TCP proxy in front of a
 * real swtpm's command port that hands each complete command and its complete response to
 * `tamper`, which may return other response bytes. What a logic analyser with a driver on the
 * Pi's SPI lines can do, on swtpm's socket.
 */
import { createConnection, createServer, type Socket } from 'node:net'

export interface BusProxy {
  /** TCTI to give the code under test instead of the swtpm's. */
  readonly tcti: string
  /** How many responses `tamper` changed. */
  readonly tampered: () => number
  close(): Promise<void>
}

/** Bytes that arrive in pieces, handed on as whole TPM frames (size at offset 2). */
function framer(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let buffered = Buffer.alloc(0)
  return (chunk) => {
    buffered = Buffer.concat([buffered, chunk])
    while (buffered.length >= 6 && buffered.length >= buffered.readUInt32BE(2)) {
      const size = buffered.readUInt32BE(2)
      onFrame(buffered.subarray(0, size))
      buffered = buffered.subarray(size)
    }
  }
}

export async function startBusProxy(
  upstreamPort: number,
  tamper: (command: Buffer, response: Buffer) => Buffer | undefined,
): Promise<BusProxy> {
  let count = 0
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: upstreamPort })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
    }
    const pending: Buffer[] = []
    client.on(
      'data',
      framer((command) => {
        pending.push(Buffer.from(command))
        upstream.write(command)
      }),
    )
    upstream.on(
      'data',
      framer((response) => {
        const command = pending.shift() ?? Buffer.alloc(0)
        const changed = tamper(command, Buffer.from(response))
        if (changed !== undefined) count++
        client.write(changed ?? response)
      }),
    )
    client.on('end', () => upstream.end())
    upstream.on('end', () => client.end())
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as { port: number }).port
  return {
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    tampered: () => count,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

/** The command code of a TPM command frame. */
export const commandCode = (command: Buffer): number =>
  command.length >= 10 ? command.readUInt32BE(6) : -1
