/** `pi-node status`'s line about the status page: its link with the token, or how to turn it on. */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { processAlive } from '@digicap/cli-kit'
import { OPS_FILE } from '../flags.ts'
import { readOrCreateStatusToken } from '../status/token.ts'

/** The status page's token (0600) in the data dir, created on first use; `status` prints it. */
export const STATUS_TOKEN_FILE = 'status-token'

export interface StatusPageLink {
  token: string
  /** The ops port's address while `serve --ops-port` runs. */
  url?: string
  /** The link that opens the page (sets the cookie), while it runs. */
  link?: string
}

export async function statusPageLink(dataDir: string): Promise<StatusPageLink> {
  const token = await readOrCreateStatusToken(join(dataDir, STATUS_TOKEN_FILE))
  try {
    const ops = JSON.parse(await readFile(join(dataDir, OPS_FILE), 'utf8')) as {
      url?: unknown
      pid?: unknown
    }
    const alive = typeof ops.pid === 'number' && processAlive(ops.pid)
    if (alive && typeof ops.url === 'string')
      return { token, url: ops.url, link: `${ops.url}/status?token=${token}` }
  } catch {
    // not serving, or serving without --ops-port
  }
  return { token }
}

export const statusPageLine = (p: StatusPageLink): string =>
  `  status page ${p.link ?? `off (serve --ops-port <port> to turn it on); token ${p.token}`}\n`
