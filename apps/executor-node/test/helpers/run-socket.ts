/** Talk to a daemon's run socket by hand (bad requests). */
import { connect } from 'node:net'

/** A frame as the protocol has it: u32 BE length, then the bytes. */
export function frame(body: string | Uint8Array, declared?: number): Buffer {
  const bytes = Buffer.from(body)
  const head = Buffer.alloc(4)
  head.writeUInt32BE(declared ?? bytes.byteLength)
  return Buffer.concat([head, bytes])
}

/** Sends `bytes`, returns the first answer frame (parsed) once the daemon closes. */
export function askSocket(path: string, bytes: Buffer): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(path)
    let got = Buffer.alloc(0)
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d])
    })
    s.on('error', reject)
    s.on('close', () => {
      const len = got.readUInt32BE(0)
      resolve(JSON.parse(got.subarray(4, 4 + len).toString('utf8')) as Record<string, unknown>)
    })
    s.write(bytes)
  })
}
