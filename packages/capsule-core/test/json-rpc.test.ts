/**
 * `rpcCall` over its bare HTTP/1.1 POST (`http:` URLs, ADR 0051): real `node:http` servers
 * answering in each framing a JSON-RPC server uses, and raw sockets that lie (a truncated
 * answer, a bad status line, a huge body, silence). Every failure is a `ChainReadError`.
 */
import { createServer as createHttpServer, type Server } from 'node:http'
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ChainReadError, rpcCall, rpcChainId } from '../src/index.ts'

const servers: { close: () => void }[] = []
afterEach(() => {
  for (const s of servers.splice(0)) s.close()
})

async function listen(server: Server | ReturnType<typeof createNetServer>): Promise<string> {
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A JSON-RPC server that answers `eth_chainId` with 0x7a69 and echoes the request. */
function jsonRpcServer(framing: 'length' | 'chunked' | 'close') {
  const seen: { url: string; headers: Record<string, unknown>; body: unknown }[] = []
  const server = createHttpServer((req, res) => {
    let body = ''
    req.on('data', (d) => {
      body += d
    })
    req.on('end', () => {
      const request = JSON.parse(body)
      seen.push({ url: req.url ?? '', headers: req.headers, body: request })
      const out = JSON.stringify({ jsonrpc: '2.0', id: request.id, result: '0x7a69' })
      if (framing === 'length') res.setHeader('content-length', Buffer.byteLength(out))
      if (framing === 'close') res.setHeader('connection', 'close')
      res.setHeader('content-type', 'application/json')
      if (framing === 'chunked') {
        // two chunks: the reader must join them
        res.write(out.slice(0, 10))
        setTimeout(() => res.end(out.slice(10)), 20)
      } else res.end(out)
    })
  })
  return { server, seen }
}

/** A raw TCP server that writes `answer` to whoever connects (after reading a request). */
function lyingServer(answer: (socket: Socket) => void) {
  return createNetServer((socket) => {
    socket.once('data', () => answer(socket))
    socket.on('error', () => {})
  })
}

describe('rpcCall over a bare HTTP/1.1 POST', () => {
  it.each([
    'length',
    'chunked',
    'close',
  ] as const)('reads a %s-framed answer, with the path, query and basic auth of the URL', async (framing) => {
    const { server, seen } = jsonRpcServer(framing)
    const base = await listen(server)
    const url = `${base.replace('http://', 'http://user:p%40ss@')}/rpc/v1?key=abc`
    expect(await rpcCall(url, 'eth_chainId', [])).toMatchObject({ result: '0x7a69' })
    expect(await rpcChainId(url)).toBe(31337)
    expect(seen[0]?.url).toBe('/rpc/v1?key=abc')
    expect(seen[0]?.headers.authorization).toBe(
      `Basic ${Buffer.from('user:p@ss').toString('base64')}`,
    )
    expect(seen[0]?.body).toEqual({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] })
  })

  it('a lying or silent server is a ChainReadError, never a hang or a crash', async () => {
    const cases: [string, (s: Socket) => void][] = [
      ['truncated body', (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"jsonrpc"')],
      ['not HTTP', (s) => s.end('SSH-2.0-OpenSSH\r\n\r\n')],
      ['no header end', (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n')],
      ['bad chunk', (s) => s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n')],
      ['huge length', (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 999999999999\r\n\r\n')],
      ['not JSON-RPC', (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]')],
      ['not JSON', (s) => s.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 3\r\n\r\nbad')],
      [
        'endless body',
        (s) => {
          s.write('HTTP/1.1 200 OK\r\n\r\n')
          const junk = Buffer.alloc(1024 * 1024, 0x20)
          const pump = () => {
            while (!s.destroyed && s.write(junk));
            if (!s.destroyed) s.once('drain', pump)
          }
          pump()
        },
      ],
      ['silence', () => {}],
    ]
    for (const [name, answer] of cases) {
      const url = await listen(lyingServer(answer))
      const err = await rpcCall(url, 'eth_chainId', [], 500).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err, name).toBeInstanceOf(ChainReadError)
    }
    // nobody listening
    const closed = await listen(lyingServer(() => {}))
    servers.pop()?.close()
    await expect(rpcCall(closed, 'eth_chainId', [], 500)).rejects.toBeInstanceOf(ChainReadError)
    await expect(rpcCall('http://[zz', 'eth_chainId', [], 500)).rejects.toBeInstanceOf(
      ChainReadError,
    )
  })
})
