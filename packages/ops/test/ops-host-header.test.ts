/**
 * The ops port answers only the Host names it knows (DNS rebinding): a web page whose name was
 * rebound to 127.0.0.1 sends its own name as Host and gets 421 on every route. Real server,
 * raw requests (node:http with setHost off) so the Host header is what the test says.
 */
import { request } from 'node:http'
import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import {
  allowedHostHeaders,
  createNodeMetrics,
  type OpsServer,
  startOpsServer,
  statusPageRoutes,
} from '../src/index.ts'

const servers: OpsServer[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close()
})

function get(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, headers: { host }, setHost: false },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c) => {
          body += c
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

async function serve(
  extra: Parameters<typeof startOpsServer>[0] extends infer O ? Partial<O> : never,
) {
  const metrics = createNodeMetrics('pi-node', { peers: () => 7, capsulesGuarded: () => 3 })
  const ops = await startOpsServer({
    port: 0,
    metrics,
    health: { chain: () => ({ ok: true, detail: { text: 'chain 31337 head 99' } }) },
    routes: [
      statusPageRoutes({
        token: 'ab'.repeat(32),
        snapshot: async () => ({
          title: 't',
          generatedAt: new Date().toISOString(),
          health: [],
          capsules: [],
          history: [],
          pending: [],
        }),
        subscribe: () => () => {},
      }),
    ],
    ...extra,
  })
  servers.push(ops)
  return ops
}

describe('ops port Host check (DNS rebinding)', () => {
  it('answers 421 to a foreign Host on /metrics, /healthz and /status', async () => {
    const ops = await serve({})
    for (const host of [
      `rebind.attacker.example:${ops.port}`,
      'rebind.attacker.example',
      `127.0.0.1:${ops.port + 1}`, // another port: another origin
      `localhost.attacker.example:${ops.port}`,
      '',
    ]) {
      for (const path of ['/metrics', '/healthz', '/status', '/status/events', '/nothing']) {
        const r = await get(ops.port, path, host)
        expect({ host, path, status: r.status }).toEqual({ host, path, status: 421 })
        expect(r.body).not.toContain('digicap_')
        expect(r.body).not.toContain('chain 31337')
      }
    }
  })

  it('answers 127.0.0.1, localhost and [::1] at the bound port, any case', async () => {
    const ops = await serve({})
    for (const host of [
      `127.0.0.1:${ops.port}`,
      `localhost:${ops.port}`,
      `LocalHost:${ops.port}`,
      `[::1]:${ops.port}`,
    ]) {
      const m = await get(ops.port, '/metrics', host)
      expect(m.status).toBe(200)
      expect(m.body).toContain('digicap_capsules_guarded 3')
      expect((await get(ops.port, '/healthz', host)).status).toBe(200)
      expect((await get(ops.port, '/status', host)).status).toBe(401) // reached, needs login
    }
    // fetch sets Host from the URL: what Prometheus, curl and the browser over ssh -L do.
    expect((await fetch(`${ops.url}/healthz`)).status).toBe(200)
  })

  it('a request without a Host header (HTTP/1.0) is refused too', async () => {
    const ops = await serve({})
    const text = await new Promise<string>((resolve, reject) => {
      let out = ''
      const s = connect(ops.port, '127.0.0.1', () => s.write('GET /metrics HTTP/1.0\r\n\r\n'))
      s.setEncoding('utf8')
      s.on('data', (c) => {
        out += c
      })
      s.on('end', () => resolve(out))
      s.on('error', reject)
    })
    expect(text).toMatch(/^HTTP\/1\.1 421/)
  })

  it('answers the names of --ops-allowed-host (at the bound port, or name:port as given)', async () => {
    const ops = await serve({ allowedHosts: ['pi.lan', 'Metrics.Example:8443'] })
    expect((await get(ops.port, '/metrics', `pi.lan:${ops.port}`)).status).toBe(200)
    expect((await get(ops.port, '/metrics', 'metrics.example:8443')).status).toBe(200)
    expect((await get(ops.port, '/metrics', `metrics.example:${ops.port}`)).status).toBe(421)
    expect((await get(ops.port, '/metrics', `other.lan:${ops.port}`)).status).toBe(421)
  })

  it('the allowed set: loopback names, the listen address when it is one, the extra names', () => {
    expect([...allowedHostHeaders(9464, '127.0.0.1')].sort()).toEqual([
      '127.0.0.1:9464',
      '[::1]:9464',
      'localhost:9464',
    ])
    expect(allowedHostHeaders(9464, '192.168.1.10').has('192.168.1.10:9464')).toBe(true)
    expect(allowedHostHeaders(9464, '0.0.0.0').has('0.0.0.0:9464')).toBe(false)
    expect(allowedHostHeaders(9464, 'fe80::1').has('[fe80::1]:9464')).toBe(true)
    expect(allowedHostHeaders(80, '127.0.0.1').has('localhost')).toBe(true)
    expect(allowedHostHeaders(9464, '127.0.0.1').has('localhost')).toBe(false)
    expect(allowedHostHeaders(9464, '127.0.0.1', ['[fd00::5]:1']).has('[fd00::5]:1')).toBe(true)
  })
})
