/**
 * The daemons' local HTTP port: `/metrics` (Prometheus text), `/healthz` (JSON; 200 healthy,
 * 503 not), and any extra routes (the pi-node status page). Off unless the daemon is told a
 * port; bound to 127.0.0.1 by default, and a non-loopback host is refused unless
 * `allowPublic` (the status page shows what this node guards; metrics show its traffic).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { type AddressInfo, isIP } from 'node:net'
import { OpsListenError } from '../errors.ts'
import type { NodeMetrics } from '../metrics/node-metrics.ts'
import { isLoopbackHost } from './loopback.ts'

/** One health check's answer. */
export interface HealthCheck {
  ok: boolean
  /** What was seen (head block, peer count, an error code). Never secret. */
  detail?: Record<string, unknown>
}

/** Named health checks, run on each `/healthz`. */
export type HealthChecks = Record<string, () => Promise<HealthCheck> | HealthCheck>

/** An extra route handler: returns false when the request is not its. */
export type RouteHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
) => boolean | Promise<boolean>

export interface OpsServerOptions {
  /** Default 127.0.0.1. */
  host?: string
  /** 0 picks a free port. */
  port: number
  /** Listen on a non-loopback host (`--ops-public`). */
  allowPublic?: boolean
  metrics?: NodeMetrics
  health?: HealthChecks
  /** Tried in order before the built-in routes. */
  routes?: RouteHandler[]
  /** Time limit of one health check, ms. Default 3000. */
  healthTimeoutMs?: number
  /**
   * Host header values answered besides `127.0.0.1`, `localhost` and `[::1]` at the bound port
   * (`--ops-allowed-host`): `name` (at the bound port) or `name:port`. Any other Host gets 421,
   * so a web page whose name was rebound to this address (DNS rebinding) reads nothing.
   */
  allowedHosts?: readonly string[]
  /** Open connections at most (`server.maxConnections`). Default 128. */
  maxConnections?: number
  /** Open connections from one remote address at most; more are closed at once. Default 32. */
  maxConnectionsPerAddress?: number
}

export interface OpsServer {
  readonly url: string
  readonly port: number
  readonly host: string
  close(): Promise<void>
}

async function runCheck(check: () => Promise<HealthCheck> | HealthCheck, ms: number) {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      Promise.resolve().then(check),
      new Promise<HealthCheck>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, detail: { error: 'timeout', ms } }), ms)
      }),
    ])
  } catch (err) {
    const code = (err as { code?: unknown })?.code
    return { ok: false, detail: { error: typeof code === 'string' ? code : 'failed' } }
  } finally {
    clearTimeout(timer)
  }
}

/** `/healthz`: every check, `ok` when all are. */
export async function healthReport(checks: HealthChecks, timeoutMs = 3000) {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => [name, await runCheck(check, timeoutMs)]),
  )
  const results = Object.fromEntries(entries) as Record<string, HealthCheck>
  return { ok: Object.values(results).every((r) => r.ok), checks: results }
}

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]']

/** The Host header values the server answers (lower case, `name:port`; bare `name` at port 80). */
export function allowedHostHeaders(
  port: number,
  listenHost: string,
  extra: readonly string[] = [],
): Set<string> {
  const out = new Set<string>()
  const add = (h: string) => {
    const name = h.trim().toLowerCase()
    if (name === '') return
    // `name:port` or `[v6]:port` as given; otherwise the name at the bound port.
    if (/^(\[[^\]]+\]|[^:[\]]+):\d+$/.test(name)) {
      out.add(name)
      return
    }
    const bare = isIP(name) === 6 ? `[${name}]` : name
    out.add(`${bare}:${port}`)
    if (port === 80) out.add(bare)
  }
  for (const h of LOOPBACK_NAMES) add(h)
  // The listen address itself, when it is one address (an IP literal cannot be rebound).
  if (listenHost !== '0.0.0.0' && listenHost !== '::') add(listenHost.replace(/^\[|\]$/g, ''))
  for (const h of extra) add(h)
  return out
}

/**
 * The loud line a daemon logs when its ops port listens beyond loopback (`--ops-public`), or
 * `undefined` on loopback.
 */
export function publicOpsWarning(server: { host: string; url: string }, statusPage: boolean) {
  if (isLoopbackHost(server.host)) return undefined
  return {
    message: `OPS PORT IS PUBLIC (--ops-public): /metrics, /healthz${statusPage ? ' and the status page' : ''} over plain HTTP on ${server.url}, reachable beyond this machine`,
    fields: {
      hint: 'prefer 127.0.0.1 and ssh -L; otherwise firewall the port and name the hosts with --ops-allowed-host',
    },
  }
}

/**
 * Starts the ops server.
 *
 * @throws {OpsListenError} for a non-loopback host without `allowPublic`, or a port in use.
 * @example
 * ```ts
 * const ops = await startOpsServer({ port: 9464, metrics, health: { chain: async () => ({ ok: true }) } })
 * // curl http://127.0.0.1:9464/metrics
 * ```
 */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const host = options.host ?? '127.0.0.1'
  if (!isLoopbackHost(host) && options.allowPublic !== true) {
    throw new OpsListenError('The ops port listens on loopback only', {
      details: { host },
      hint: 'Use 127.0.0.1 (reach it over SSH: ssh -L), or pass --ops-public to expose it on purpose.',
    })
  }
  let allowed = new Set<string>()
  // headersTimeout is checked this often (Node's default: every 30 s).
  const server = createServer({ connectionsCheckingInterval: 1_000 }, async (req, res) => {
    try {
      if (!allowed.has((req.headers.host ?? '').toLowerCase())) {
        res
          .writeHead(421, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
          .end(
            'misdirected request: this ops port answers Host 127.0.0.1, localhost or [::1] at its port (add names with --ops-allowed-host)\n',
          )
        return
      }
      const url = new URL(req.url ?? '/', 'http://ops.invalid')
      for (const route of options.routes ?? []) if (await route(req, res, url)) return
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end()
        return
      }
      if (url.pathname === '/metrics' && options.metrics) {
        const body = await options.metrics.text()
        res.writeHead(200, { 'content-type': options.metrics.contentType }).end(body)
        return
      }
      if (url.pathname === '/healthz') {
        const report = await healthReport(options.health ?? {}, options.healthTimeoutMs)
        res
          .writeHead(report.ok ? 200 : 503, {
            'content-type': 'application/json',
            'cache-control': 'no-store',
          })
          .end(`${JSON.stringify(report)}\n`)
        return
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
    } catch {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' })
      res.end('internal error\n')
    }
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  // Connections that never finish a request are capped in number, in all and per address.
  server.maxConnections = options.maxConnections ?? 128
  const perAddress = options.maxConnectionsPerAddress ?? 32
  const open = new Map<string, number>()
  server.on('connection', (socket) => {
    const from = socket.remoteAddress ?? '?'
    const n = (open.get(from) ?? 0) + 1
    if (n > perAddress) {
      socket.destroy()
      return
    }
    open.set(from, n)
    socket.once('close', () => {
      const left = (open.get(from) ?? 1) - 1
      if (left === 0) open.delete(from)
      else open.set(from, left)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause: NodeJS.ErrnoException) =>
      reject(
        new OpsListenError('Cannot listen on the ops port', {
          cause,
          details: { host, port: options.port, code: cause.code },
          hint: 'Pick another --ops-port (0 picks a free one).',
        }),
      ),
    )
    server.listen(options.port, host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  allowed = allowedHostHeaders(port, host, options.allowedHosts)
  const shown = host.includes(':') ? `[${host}]` : host
  return {
    url: `http://${shown}:${port}`,
    port,
    host,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
