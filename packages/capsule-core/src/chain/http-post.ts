/**
 * One HTTP/1.1 POST of a JSON body over a plain TCP socket, for `http:` RPC URLs. Node's
 * `fetch` loads undici on first use (~150 ms of CPU, 15 MiB) and `node:http` its stream and
 * agent stack (~80 ms): more than a whole `pi-node status` may take (ADR 0051). A JSON-RPC
 * answer is one small document, so this reads a `content-length`, chunked or close-delimited
 * body of at most `MAX_BODY` bytes and nothing else (no redirects, no keep-alive, no proxy).
 * `https:` and anything else go through `fetch`.
 */
import { connect } from 'node:net'

/** An answer bigger than this is refused (a JSON-RPC read here is a few hundred bytes). */
export const MAX_BODY = 8 * 1024 * 1024

export interface PostAnswer {
  status: number
  body: string
}

/** Thrown (and wrapped by the caller) when the server's bytes are not an HTTP/1.x answer. */
export class HttpAnswerError extends Error {}

/** The body of a chunked answer, or undefined while it is incomplete. */
function dechunk(raw: Buffer): Buffer | undefined {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = raw.indexOf('\r\n', at)
    if (eol < 0) return undefined
    const size = Number.parseInt(raw.subarray(at, eol).toString('latin1').split(';')[0] ?? '', 16)
    if (!Number.isSafeInteger(size) || size < 0) throw new HttpAnswerError('bad chunk size')
    if (size === 0) return Buffer.concat(parts)
    if (raw.length < eol + 2 + size + 2) return undefined
    parts.push(raw.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
}

/** Parses what has arrived; `ended` when the server closed. Undefined: wait for more. */
function parseAnswer(raw: Buffer, ended: boolean): PostAnswer | undefined {
  const head = raw.indexOf('\r\n\r\n')
  if (head < 0) {
    if (ended) throw new HttpAnswerError('no HTTP header')
    return undefined
  }
  const lines = raw.subarray(0, head).toString('latin1').split('\r\n')
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')
  if (!status) throw new HttpAnswerError('not an HTTP/1.x status line')
  const headers = new Map<string, string>()
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon > 0)
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  const rest = raw.subarray(head + 4)
  let body: Buffer | undefined
  if (headers.get('transfer-encoding')?.toLowerCase().includes('chunked')) body = dechunk(rest)
  else if (headers.has('content-length')) {
    const length = Number(headers.get('content-length'))
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_BODY)
      throw new HttpAnswerError('bad content-length')
    body = rest.length >= length ? rest.subarray(0, length) : undefined
  } else body = ended ? rest : undefined
  if (body === undefined) {
    if (ended) throw new HttpAnswerError('the answer ended early')
    return undefined
  }
  return { status: Number(status[1]), body: body.toString('utf8') }
}

/**
 * POSTs `body` (JSON) to the `http:` URL `url` and reads the whole answer.
 * @throws {HttpAnswerError | Error} on a socket error, a bad answer or after `timeoutMs`.
 */
export function httpPostJson(url: URL, body: string, timeoutMs: number): Promise<PostAnswer> {
  const payload = Buffer.from(body, 'utf8')
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const auth = url.username
    ? `Authorization: Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}\r\n`
    : ''
  const request = Buffer.concat([
    Buffer.from(
      `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n${auth}` +
        `Content-Type: application/json\r\nAccept: application/json\r\n` +
        `Content-Length: ${payload.length}\r\nConnection: close\r\n\r\n`,
      'latin1',
    ),
    payload,
  ])
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let done = false
    const socket = connect({ host, port: Number(url.port || 80) })
    const finish = (err: Error | undefined, answer?: PostAnswer) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      if (err) reject(err)
      else resolve(answer as PostAnswer)
    }
    const timer = setTimeout(() => finish(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs)
    const look = (ended: boolean) => {
      try {
        const answer = parseAnswer(Buffer.concat(chunks, size), ended)
        if (answer) finish(undefined, answer)
      } catch (err) {
        finish(err as Error)
      }
    }
    socket.on('connect', () => socket.write(request))
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      size += chunk.length
      if (size > MAX_BODY + 64 * 1024) finish(new HttpAnswerError('answer too big'))
      else look(false)
    })
    socket.on('end', () => look(true))
    socket.on('close', () => finish(new HttpAnswerError('the connection closed before an answer')))
    socket.on('error', (err) => finish(err))
  })
}
