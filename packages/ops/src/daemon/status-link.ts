/**
 * `pi-node status`'s line about the status page: a login link (a single-use code that expires in
 * a minute, asked of the running daemon with the token), or how to turn the page on.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { processAlive } from '@digicap/cli-kit'
import { OPS_FILE } from '../flags.ts'
import { readStatusToken } from '../status/token.ts'

/**
 * The status page's long-lived token (0600) in the data dir: API and CLI use only. `serve` writes
 * a new one at each start; `status` only reads it.
 */
export const STATUS_TOKEN_FILE = 'status-token'

export interface StatusPageLink {
  /** The ops port's address while `serve --ops-port` runs. */
  url?: string
  /** The link that logs a browser in (`/status?code=…`): single use, until `expiresAt`. */
  link?: string
  expiresAt?: string
  /** Why there is no link although the daemon serves (e.g. `HTTP 401`, `ECONNREFUSED`). */
  error?: string
}

/** The address a local client reaches a server listening on `url` by (0.0.0.0 → 127.0.0.1). */
function localUrl(url: string): string {
  const u = new URL(url)
  if (u.hostname === '0.0.0.0') u.hostname = '127.0.0.1'
  else if (u.hostname === '[::]') u.hostname = '[::1]'
  return u.origin
}

/** Asks the running daemon for a login code (`POST /status/login` with the token). */
export async function statusLoginCode(
  url: string,
  token: string,
): Promise<{ code: string; expiresInMs: number }> {
  const res = await fetch(`${localUrl(url)}/status/login`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(5_000),
  })
  if (res.status !== 200)
    throw Object.assign(new Error(`HTTP ${res.status}`), { code: `HTTP ${res.status}` })
  const body = (await res.json()) as { code?: unknown; expiresInMs?: unknown }
  if (typeof body.code !== 'string' || typeof body.expiresInMs !== 'number')
    throw Object.assign(new Error('bad answer'), { code: 'bad-answer' })
  return { code: body.code, expiresInMs: body.expiresInMs }
}

export async function statusPageLink(dataDir: string): Promise<StatusPageLink> {
  let url: string
  try {
    const ops = JSON.parse(await readFile(join(dataDir, OPS_FILE), 'utf8')) as {
      url?: unknown
      pid?: unknown
    }
    const alive = typeof ops.pid === 'number' && processAlive(ops.pid)
    if (!alive || typeof ops.url !== 'string') return {}
    url = ops.url
  } catch {
    return {} // not serving, or serving without --ops-port
  }
  try {
    const token = await readStatusToken(join(dataDir, STATUS_TOKEN_FILE))
    const { code, expiresInMs } = await statusLoginCode(url, token)
    return {
      url,
      // The address a local browser reaches, which the Host check lets in (0.0.0.0 is no host).
      link: `${localUrl(url)}/status?code=${code}`,
      expiresAt: new Date(Date.now() + expiresInMs).toISOString(),
    }
  } catch (err) {
    const e = err as {
      code?: unknown
      cause?: { code?: unknown }
      name?: unknown
      details?: { reason?: unknown }
    }
    const code = String(e.cause?.code ?? e.code ?? e.name ?? 'failed')
    return { url, error: e.details?.reason ? `${code} ${String(e.details.reason)}` : code }
  }
}

export const statusPageLine = (p: StatusPageLink): string =>
  p.link !== undefined
    ? `  status page ${p.link}\n              (a login link: single use, valid until ${p.expiresAt?.slice(11, 19)} UTC)\n`
    : p.url !== undefined
      ? `  status page ${p.url}/status: no login link (${p.error ?? 'failed'})\n`
      : '  status page off (serve --ops-port <port> to turn it on)\n'
