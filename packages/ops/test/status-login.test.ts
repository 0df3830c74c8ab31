/**
 * Logging in to the status page: `POST /status/login` with the token gives a single-use code
 * that expires; `/status?code=` spends it for a random session id in the cookie (Max-Age); the
 * long-lived token never rides in a URL or a cookie. Real ops server, real fetches, and the
 * link `pi-node status` prints (`statusPageLink`) from a real data folder.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createStatusToken,
  type OpsServer,
  startOpsServer,
  statusLoginCode,
  statusPageLine,
  statusPageLink,
  statusPageRoutes,
} from '../src/index.ts'

let dir: string
let token: string
let ops: OpsServer

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ops-login-'))
  token = await createStatusToken(join(dir, 'status-token'))
  ops = await startOpsServer({
    port: 0,
    routes: [
      statusPageRoutes({
        token,
        loginCodeTtlMs: 400,
        sessionMaxAgeS: 2,
        snapshot: async () => ({
          title: 'pi-node test',
          generatedAt: new Date().toISOString(),
          health: [],
          capsules: [],
          history: [],
          pending: [{ grantId: '0xfeed', since: 't' }],
        }),
        subscribe: () => () => {},
      }),
    ],
  })
  await writeFile(join(dir, 'ops.json'), JSON.stringify({ pid: process.pid, url: ops.url }))
})
afterAll(async () => {
  await ops?.close()
  await rm(dir, { recursive: true, force: true })
})

const cookieOf = (res: Response) => res.headers.get('set-cookie') ?? ''
const sessionOf = (res: Response) => /digicap_status=([^;]*)/.exec(cookieOf(res))?.[1] ?? ''

describe('status page login', () => {
  it('a login code becomes a session cookie that is not the token, with Max-Age', async () => {
    const { code, expiresInMs } = await statusLoginCode(ops.url, token)
    expect(expiresInMs).toBe(400)
    expect(code).not.toContain(token)
    const res = await fetch(`${ops.url}/status?code=${code}`, { redirect: 'manual' })
    expect(res.status).toBe(303)
    expect(res.headers.get('location')).toBe('/status')
    const cookie = cookieOf(res)
    expect(cookie).toMatch(
      /^digicap_status=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/status; Max-Age=2$/,
    )
    expect(cookie).not.toContain(token)
    const page = await fetch(`${ops.url}/status`, {
      headers: { cookie: `digicap_status=${sessionOf(res)}` },
    })
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('0xfeed')
  })

  it('a code is single use and expires', async () => {
    const { code } = await statusLoginCode(ops.url, token)
    expect((await fetch(`${ops.url}/status?code=${code}`, { redirect: 'manual' })).status).toBe(303)
    // The link left in the browser history is spent.
    const again = await fetch(`${ops.url}/status?code=${code}`, { redirect: 'manual' })
    expect(again.status).toBe(401)
    expect(cookieOf(again)).toBe('')
    const late = await statusLoginCode(ops.url, token)
    await new Promise((r) => setTimeout(r, 500))
    expect(
      (await fetch(`${ops.url}/status?code=${late.code}`, { redirect: 'manual' })).status,
    ).toBe(401)
  })

  it('a session ends after Max-Age; a forged or token-valued cookie is refused', async () => {
    const { code } = await statusLoginCode(ops.url, token)
    const session = sessionOf(await fetch(`${ops.url}/status?code=${code}`, { redirect: 'manual' }))
    const withCookie = (v: string) =>
      fetch(`${ops.url}/status/fragment`, { headers: { cookie: `digicap_status=${v}` } })
    expect((await withCookie(session)).status).toBe(200)
    expect((await withCookie(token)).status).toBe(401) // the cookie never is the token
    expect((await withCookie('A'.repeat(43))).status).toBe(401)
    await new Promise((r) => setTimeout(r, 2100))
    expect((await withCookie(session)).status).toBe(401)
  })

  it('the token opens nothing in a URL; it stays for the API (Bearer) and asking codes', async () => {
    const byUrl = await fetch(`${ops.url}/status?token=${token}`, { redirect: 'manual' })
    expect(byUrl.status).toBe(401)
    expect(cookieOf(byUrl)).toBe('')
    const api = await fetch(`${ops.url}/status/fragment`, {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(api.status).toBe(200)
    // Codes only for the token holder, only by POST.
    for (const init of [
      { method: 'POST' },
      { method: 'POST', headers: { authorization: `Bearer ${'0'.repeat(64)}` } },
    ])
      expect((await fetch(`${ops.url}/status/login`, init)).status).toBe(401)
    expect((await fetch(`${ops.url}/status/login`)).status).toBe(405)
  })

  it('`pi-node status` prints a fresh login link, never the token', async () => {
    const page = await statusPageLink(dir)
    expect(page.link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/status\?code=[A-Za-z0-9_-]{43}$/)
    expect(JSON.stringify(page)).not.toContain(token)
    const line = statusPageLine(page)
    expect(line).toContain(page.link)
    expect(line).toContain('single use')
    expect(line).not.toContain(token)
    const res = await fetch(page.link as string, { redirect: 'manual' })
    expect(res.status).toBe(303)
    // Not serving: says how to turn it on, and still no token.
    const idle = await mkdtemp(join(tmpdir(), 'ops-login-idle-'))
    await createStatusToken(join(idle, 'status-token'))
    expect(statusPageLine(await statusPageLink(idle))).toBe(
      '  status page off (serve --ops-port <port> to turn it on)\n',
    )
    await rm(idle, { recursive: true, force: true })
  })

  it('a daemon on 0.0.0.0 (--ops-public): the printed link names 127.0.0.1, which the Host check lets in', async () => {
    const open = await startOpsServer({
      host: '0.0.0.0',
      port: 0,
      allowPublic: true,
      routes: [
        statusPageRoutes({
          token,
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
    const folder = await mkdtemp(join(tmpdir(), 'ops-login-public-'))
    try {
      await writeFile(join(folder, 'status-token'), token, { mode: 0o600 })
      await writeFile(join(folder, 'ops.json'), JSON.stringify({ pid: process.pid, url: open.url }))
      expect(open.url).toMatch(/^http:\/\/0\.0\.0\.0:/)
      const page = await statusPageLink(folder)
      expect(page.link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/status\?code=/)
      const res = await fetch(page.link as string, { redirect: 'manual' })
      expect(res.status).toBe(303) // not 421: the link works where it is printed
    } finally {
      await open.close()
      await rm(folder, { recursive: true, force: true })
    }
  })
})
