/**
 * Request/response latency of `/digicap/key-release/1.0.0` between two real libp2p nodes on
 * loopback (TCP + noise + yamux; a new stream per request, as `request()` does), against
 * the baseline of a raw loopback TCP echo of the same frame bytes, measured in the same run.
 *
 *   node bench/roundtrip.ts [iterations]
 */
import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import {
  encodeFrame,
  encodeKeyRelease,
  handle,
  type KeyRelease,
  keyReleaseProtocol,
  request,
} from '../src/index.ts'
import { createPair } from '../test/helpers/nodes.ts'

const iterations = Number(process.argv[2] ?? 2000)
const warmup = Math.min(200, Math.floor(iterations / 5))

const release: KeyRelease = {
  grantId: new Uint8Array(32).fill(1),
  capsuleId: new Uint8Array(32).fill(2),
  hpke: new Uint8Array(80).fill(3),
  fastPath: false,
}
const frame = encodeFrame(encodeKeyRelease(release))

function stats(samples: number[]) {
  const s = [...samples].sort((x, y) => x - y)
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number
  return { p50: at(0.5), p99: at(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length }
}

async function time(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await fn()
    out.push(performance.now() - t)
  }
  return out
}

async function tcpEcho(): Promise<{ samples: number[]; close: () => void }> {
  const server = createServer((sock) => sock.pipe(sock))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const client: Socket = connect(port, '127.0.0.1')
  client.setNoDelay(true)
  await once(client, 'connect')
  const roundTrip = () =>
    new Promise<void>((resolve) => {
      let got = 0
      const onData = (chunk: Buffer) => {
        got += chunk.length
        if (got >= frame.length) {
          client.off('data', onData)
          resolve()
        }
      }
      client.on('data', onData)
      client.write(frame)
    })
  await time(warmup, roundTrip)
  const samples = await time(iterations, roundTrip)
  return {
    samples,
    close: () => {
      client.destroy()
      server.close()
    },
  }
}

const { a, b, stop } = await createPair()
await handle(b, keyReleaseProtocol, (r) => ({ grantId: r.grantId, status: 'ok' as const }))
const call = () => request(a, b.peerId, keyReleaseProtocol, release)
await time(warmup, call)
const p2p = stats(await time(iterations, call))

// The same frame echoed on one long-lived libp2p stream: transport + noise + yamux, without
// the per-request stream opening and protocol negotiation.
await b.handle('/digicap-bench/echo/1.0.0', (stream) => {
  stream.addEventListener('message', (e) => {
    stream.send(e.data)
  })
})
const echo = await a.dialProtocol(b.peerId, '/digicap-bench/echo/1.0.0')
const streamRoundTrip = () =>
  new Promise<void>((resolve) => {
    let got = 0
    const onMessage = (e: { data: { byteLength: number } }) => {
      got += e.data.byteLength
      if (got >= frame.length) {
        echo.removeEventListener('message', onMessage)
        resolve()
      }
    }
    echo.addEventListener('message', onMessage)
    echo.send(frame)
  })
await time(warmup, streamRoundTrip)
const onStream = stats(await time(iterations, streamRoundTrip))
echo.abort(new Error('bench done'))
await stop()

const tcp = await tcpEcho()
tcp.close()
const base = stats(tcp.samples)

const fmt = (n: number) => `${n.toFixed(3)} ms`
console.log(
  `key-release request/response, ${iterations} sequential exchanges, ${frame.length}-byte frame`,
)
console.log(
  `  libp2p (tcp+noise+yamux, stream per request): p50 ${fmt(p2p.p50)}  p99 ${fmt(p2p.p99)}  mean ${fmt(p2p.mean)}`,
)
console.log(
  `  libp2p echo on one open stream (no codec):    p50 ${fmt(onStream.p50)}  p99 ${fmt(onStream.p99)}  mean ${fmt(onStream.mean)}`,
)
console.log(
  `  baseline raw loopback TCP echo:                p50 ${fmt(base.p50)}  p99 ${fmt(base.p99)}  mean ${fmt(base.mean)}`,
)
console.log(
  `  ratio request() / raw TCP: p50 ${(p2p.p50 / base.p50).toFixed(1)}x  p99 ${(p2p.p99 / base.p99).toFixed(1)}x`,
)
console.log(
  `  ratio open-stream echo / raw TCP: p50 ${(onStream.p50 / base.p50).toFixed(1)}x  p99 ${(onStream.p99 / base.p99).toFixed(1)}x`,
)
