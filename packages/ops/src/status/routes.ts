/**
 * The status page's routes on the ops server:
 * - `POST /status/login` with `Authorization: Bearer <token>` (what `pi-node status` does):
 *   answers a **login code** — random, single use, valid `loginCodeTtlMs` (60 s);
 * - `GET /status?code=<c>`: spends the code, sets a cookie holding a new random **session id**
 *   (HttpOnly, SameSite=Strict, Path=/status, Max-Age) and redirects to `/status`. The long-lived
 *   token never goes in a URL or a cookie: a link left in the browser history is spent, and a
 *   cookie that reaches another port of 127.0.0.1 (cookies are not scoped by port) is a session
 *   that ends;
 * - `GET /status`: the page; `GET /status/fragment`: its `<main>`; `GET /status/events`: SSE,
 *   one `changed` event per change; `GET /status/app.js`: the live-update script.
 * Every `/status*` route needs a live session cookie or `Authorization: Bearer <token>` (API,
 * CLI); anything else gets 401 and nothing else. `?token=` links are refused.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RouteHandler } from '../http/ops-server.ts'
import { CLIENT_SCRIPT, renderMain, renderPage } from './render.ts'
import type { StatusSnapshot } from './snapshot.ts'
import { tokenMatches } from './token.ts'

const COOKIE = 'digicap_status'
/** Live login codes at most (oldest dropped). */
const MAX_CODES = 16
/** Live sessions at most (oldest dropped). */
const MAX_SESSIONS = 64

export interface StatusPageOptions {
  /** The long-lived token: `Authorization: Bearer` (API, CLI) and `POST /status/login`. */
  token: string
  snapshot(): Promise<StatusSnapshot>
  /** Subscribes to changes (keyguard events); returns the unsubscribe. */
  subscribe(onChange: () => void): () => void
  /** SSE keep-alive period, ms. Default 15 000. */
  heartbeatMs?: number
  /** How long a login code may be spent, ms. Default 60 000. */
  loginCodeTtlMs?: number
  /** A session's life (the cookie's Max-Age), seconds. Default 43 200 (12 h). */
  sessionMaxAgeS?: number
}

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
}

function cookieValue(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === COOKIE) return v.join('=')
  }
  return undefined
}

function bearer(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization
  return auth?.startsWith('Bearer ') ? auth.slice(7) : undefined
}

function refuse(
  res: ServerResponse,
  why = 'run `pi-node status` and open the link it prints',
): true {
  res
    .writeHead(401, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS })
    .end(`unauthorized: ${why}\n`)
  return true
}

/** Random secrets with an end of life, at most `max` (the oldest goes first). */
function expiring(max: number) {
  const live = new Map<string, number>()
  const sweep = (now: number) => {
    for (const [k, until] of live) if (until <= now) live.delete(k)
  }
  return {
    issue(ms: number): string {
      const now = Date.now()
      sweep(now)
      while (live.size >= max) live.delete(live.keys().next().value as string)
      const secret = randomBytes(32).toString('base64url')
      live.set(secret, now + ms)
      return secret
    },
    /** Whether `secret` is live; `spend` removes it (single use). */
    check(secret: string | undefined, spend = false): boolean {
      if (secret === undefined || !/^[A-Za-z0-9_-]{43}$/.test(secret)) return false
      const until = live.get(secret)
      if (until === undefined) return false
      if (spend || until <= Date.now()) live.delete(secret)
      return until > Date.now()
    },
  }
}

/** The status page as a route of the ops server. */
export function statusPageRoutes(options: StatusPageOptions): RouteHandler {
  const { token } = options
  const codeTtlMs = options.loginCodeTtlMs ?? 60_000
  const maxAgeS = options.sessionMaxAgeS ?? 43_200
  const codes = expiring(MAX_CODES)
  const sessions = expiring(MAX_SESSIONS)
  return async (req, res, url) => {
    if (url.pathname !== '/status' && !url.pathname.startsWith('/status/')) return false
    if (url.pathname === '/status/login') {
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST' }).end()
        return true
      }
      if (!tokenMatches(bearer(req), token))
        return refuse(res, 'POST /status/login needs the token')
      const code = codes.issue(codeTtlMs)
      res
        .writeHead(200, { 'content-type': 'application/json', ...SECURITY_HEADERS })
        .end(`${JSON.stringify({ code, expiresInMs: codeTtlMs })}\n`)
      return true
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end()
      return true
    }
    if (url.pathname === '/status' && url.searchParams.has('token'))
      return refuse(res, 'token links are gone: run `pi-node status` for a login link')
    const code = url.searchParams.get('code')
    if (url.pathname === '/status' && code !== null) {
      if (!codes.check(code, true))
        return refuse(res, 'the login code is spent or expired; run `pi-node status` again')
      const session = sessions.issue(maxAgeS * 1000)
      res
        .writeHead(303, {
          location: '/status',
          'set-cookie': `${COOKIE}=${session}; HttpOnly; SameSite=Strict; Path=/status; Max-Age=${maxAgeS}`,
          ...SECURITY_HEADERS,
        })
        .end()
      return true
    }
    if (!sessions.check(cookieValue(req)) && !tokenMatches(bearer(req), token)) return refuse(res)
    if (url.pathname === '/status') {
      const page = renderPage(await options.snapshot())
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...SECURITY_HEADERS })
      res.end(page)
    } else if (url.pathname === '/status/fragment') {
      const main = renderMain(await options.snapshot()).value
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...SECURITY_HEADERS })
      res.end(main)
    } else if (url.pathname === '/status/app.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', ...SECURITY_HEADERS })
      res.end(CLIENT_SCRIPT)
    } else if (url.pathname === '/status/events') {
      serveEvents(req, res, options)
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
    }
    return true
  }
}

function serveEvents(req: IncomingMessage, res: ServerResponse, options: StatusPageOptions) {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    connection: 'keep-alive',
    ...SECURITY_HEADERS,
  })
  res.write(': connected\n\n')
  let n = 0
  // Bursts of events (a release is several) become one refresh every 200 ms at most.
  let pending: NodeJS.Timeout | undefined
  const unsubscribe = options.subscribe(() => {
    pending ??= setTimeout(() => {
      pending = undefined
      res.write(`event: changed\ndata: ${++n}\n\n`)
    }, 200)
  })
  const beat = setInterval(() => res.write(': keep-alive\n\n'), options.heartbeatMs ?? 15_000)
  req.once('close', () => {
    clearInterval(beat)
    clearTimeout(pending)
    unsubscribe()
  })
}
