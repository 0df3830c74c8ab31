/**
 * The status page's login in a real browser (Debian chromium): cookies are not scoped by port,
 * so another service on 127.0.0.1 receives the status cookie once the owner's browser visits
 * it — it must be a session id that ends, never the long-lived token; and the login link left
 * in the browser history must be spent. Real ops server, real second server.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { type Browser, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type OpsServer,
  startOpsServer,
  statusLoginCode,
  statusPageRoutes,
} from '../../../packages/ops/src/index.ts'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'ab'.repeat(32)

let browser: Browser | undefined
let ops: OpsServer
const seen: { url: string; headers: IncomingHttpHeaders }[] = []
const other = createServer((req, res) => {
  seen.push({ url: req.url ?? '', headers: req.headers })
  if (req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end(`<script>location.href = '/status/steal'</script>`)
    return
  }
  res.writeHead(200, { 'content-type': 'text/plain' }).end('thanks')
})

beforeAll(async () => {
  ops = await startOpsServer({
    port: 0,
    routes: [
      statusPageRoutes({
        token: TOKEN,
        snapshot: async () => ({
          title: 'pi-node test',
          generatedAt: new Date().toISOString(),
          health: [],
          capsules: [],
          history: [],
          pending: [],
        }),
        subscribe: () => () => {},
      }),
    ],
  })
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()))
})
afterAll(async () => {
  await browser?.close()
  await ops?.close()
  other.close()
})

const loginLink = async () =>
  `${ops.url}/status?code=${(await statusLoginCode(ops.url, TOKEN)).code}`

describe('status login in chromium', () => {
  it('another 127.0.0.1 port receives a session id with Max-Age, never the token', async () => {
    expect(existsSync(CHROMIUM), 'apt-get install chromium').toBe(true)
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
    const context = await browser.newContext()
    const page = await context.newPage()
    expect((await page.goto(await loginLink()))?.status()).toBe(200)
    const [cookie] = await context.cookies()
    expect(cookie?.expires).toBeGreaterThan(Date.now() / 1000) // Max-Age, not a session-less forever
    await page.goto(`http://127.0.0.1:${(other.address() as AddressInfo).port}/`)
    await page.waitForURL(/\/status\/steal$/)
    const steal = seen.find((s) => s.url === '/status/steal')
    expect(steal?.headers.cookie).toMatch(/^digicap_status=[A-Za-z0-9_-]{43}$/)
    expect(steal?.headers.cookie).not.toContain(TOKEN)
    await context.close()
  }, 60_000)

  it('the browser history holds no token, and the login link it holds is spent', async () => {
    const profile = await mkdtemp(join(tmpdir(), 'status-chromium-'))
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ['--no-sandbox'],
    })
    const page = await ctx.newPage()
    const link = await loginLink()
    expect((await page.goto(link))?.status()).toBe(200)
    expect(new URL(page.url()).search).toBe('')
    await page.waitForTimeout(1500)
    await ctx.close() // flushes the History database
    const db = new DatabaseSync(join(profile, 'Default', 'History'), { readOnly: true })
    const urls = (db.prepare('SELECT url FROM urls').all() as { url: string }[]).map((u) => u.url)
    db.close()
    await rm(profile, { recursive: true, force: true })
    expect(urls.some((u) => u.includes(TOKEN))).toBe(false)
    // Whoever reads the history later gets nothing from the code in it.
    const code = urls.map((u) => new URL(u).searchParams.get('code')).find((c) => c !== null)
    expect(code).toBeDefined()
    const replay = await fetch(`${ops.url}/status?code=${code}`, { redirect: 'manual' })
    expect(replay.status).toBe(401)
    expect(replay.headers.get('set-cookie')).toBeNull()
  }, 60_000)
})
