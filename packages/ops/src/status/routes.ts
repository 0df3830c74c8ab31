/**
 * The status page's routes on the ops server:
 * - `GET /status?token=<t>`: checks the token, sets it as an HttpOnly SameSite=Strict cookie and
 *   redirects to `/status` (the token leaves the address bar and the browser history);
 * - `GET /status`: the page; `GET /status/fragment`: its `<main>`; `GET /status/events`: SSE,
 *   one `changed` event per change; `GET /status/app.js`: the live-update script.
 * Every `/status*` route needs the cookie (or `Authorization: Bearer <t>`); a wrong or missing
 * token gets 401 and nothing else.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RouteHandler } from '../http/ops-server.ts'
import { CLIENT_SCRIPT, renderMain, renderPage } from './render.ts'
import type { StatusSnapshot } from './snapshot.ts'
import { tokenMatches } from './token.ts'

const COOKIE = 'digicap_status'

export interface StatusPageOptions {
  token: string
  snapshot(): Promise<StatusSnapshot>
  /** Subscribes to changes (keyguard events); returns the unsubscribe. */
  subscribe(onChange: () => void): () => void
  /** SSE keep-alive period, ms. Default 15 000. */
  heartbeatMs?: number
}

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
}

function cookieToken(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === COOKIE) return v.join('=')
  }
  const auth = req.headers.authorization
  return auth?.startsWith('Bearer ') ? auth.slice(7) : undefined
}

function refuse(res: ServerResponse): true {
  res
    .writeHead(401, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS })
    .end('unauthorized: open the link `pi-node status` prints (it carries the token)\n')
  return true
}

/** The status page as a route of the ops server. */
export function statusPageRoutes(options: StatusPageOptions): RouteHandler {
  const { token } = options
  return async (req, res, url) => {
    if (url.pathname !== '/status' && !url.pathname.startsWith('/status/')) return false
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end()
      return true
    }
    const presented = url.searchParams.get('token')
    if (url.pathname === '/status' && presented !== null) {
      if (!tokenMatches(presented, token)) return refuse(res)
      res
        .writeHead(303, {
          location: '/status',
          'set-cookie': `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/status`,
          ...SECURITY_HEADERS,
        })
        .end()
      return true
    }
    if (!tokenMatches(cookieToken(req), token)) return refuse(res)
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
