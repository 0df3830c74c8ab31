import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createStatusToken,
  escapeHtml,
  type OpsServer,
  type StatusSnapshot,
  startOpsServer,
  statusPageRoutes,
} from '../src/index.ts'

const EVIL = `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`
const snapshot = (): StatusSnapshot => ({
  title: `pi-node ${EVIL}`,
  generatedAt: '2026-12-04T10:00:00.000Z',
  health: [{ name: 'tpm', ok: true, text: `reachable ${EVIL}` }],
  capsules: [{ cid: 'bafyCID', capsuleId: '0x01', policy: '0xP', runsUsed: 1, name: EVIL }],
  history: [
    { time: 't', outcome: 'refused', path: 'chain', grantId: '0x02', reason: `bad ${EVIL}` },
  ],
  pending: [],
})

let dir: string
let token: string
let ops: OpsServer
const changes = new EventTarget()

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ops-status-'))
  token = await createStatusToken(join(dir, 'status-token'))
  ops = await startOpsServer({
    port: 0,
    routes: [
      statusPageRoutes({
        token,
        snapshot: async () => snapshot(),
        subscribe: (fn) => {
          changes.addEventListener('x', fn)
          return () => changes.removeEventListener('x', fn)
        },
      }),
    ],
  })
})
afterAll(async () => {
  await ops?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('status page routes', () => {
  it('a wrong, missing or shortened token gets 401 on every route', async () => {
    for (const path of [
      '/status',
      `/status?token=${'0'.repeat(64)}`,
      `/status?token=${token.slice(0, 63)}`,
      '/status/fragment',
      '/status/events',
      '/status/app.js',
    ]) {
      const res = await fetch(`${ops.url}${path}`, { redirect: 'manual' })
      expect(res.status, path).toBe(401)
      expect(await res.text()).not.toContain('bafyCID')
    }
    const forged = await fetch(`${ops.url}/status`, {
      headers: { cookie: `digicap_status=${'f'.repeat(64)}` },
    })
    expect(forged.status).toBe(401)
  })

  it('renders every attacker-controlled text escaped, under a CSP without inline script', async () => {
    const res = await fetch(`${ops.url}/status`, { headers: { authorization: `Bearer ${token}` } })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'")
    const page = await res.text()
    expect(page).not.toContain('<script>window.pwned')
    expect(page).not.toContain('<img src=x')
    expect(page).toContain(escapeHtml(EVIL))
    expect(page.match(/<script/g)).toEqual(['<script']) // only the app.js tag
    expect(page).toContain('<script src="/status/app.js"></script>')
  })

  it('events: one `changed` per burst of changes', async () => {
    const res = await fetch(`${ops.url}/status/events`, {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    let text = ''
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read()
        if (done) break
        text += new TextDecoder().decode(value)
      }
    }
    await readUntil(': connected')
    for (let i = 0; i < 5; i++) changes.dispatchEvent(new Event('x'))
    await readUntil('data: 1')
    await new Promise((r) => setTimeout(r, 400))
    changes.dispatchEvent(new Event('x'))
    await readUntil('data: 2')
    expect(text.match(/event: changed/g)).toHaveLength(2)
    await reader.cancel()
  })
})
