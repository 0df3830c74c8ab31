/**
 * `--ops-public` is loud (a warning line at start, from both daemons' wiring) and the ops port
 * caps its connections, in all (`server.maxConnections`) and per remote address, so idle
 * half-open connections cannot pile up. Real server, real sockets (127.0.0.2 as a second
 * client address on Linux loopback).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createLogger,
  type OpsServer,
  startExecutorOps,
  startOpsServer,
  startPiNodeOps,
} from '../src/index.ts'

const servers: OpsServer[] = []
const sockets: Socket[] = []
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy()
  for (const s of servers.splice(0)) await s.close()
})

/** `n` connections from `from` that start a request and never finish its headers. */
async function halfOpen(port: number, n: number, from = '127.0.0.1'): Promise<Socket[]> {
  const out = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve) => {
          const s = connect({ port, host: '127.0.0.1', localAddress: from }, () => {
            s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n')
            resolve(s)
          })
          s.on('error', () => resolve(s))
        }),
    ),
  )
  sockets.push(...out)
  await new Promise((r) => setTimeout(r, 300))
  return out
}
const stillOpen = (ss: Socket[]) => ss.filter((s) => !s.destroyed && s.readyState === 'open').length

describe('ops port connection limits', () => {
  it('closes connections beyond the per-address cap; another address is still served', async () => {
    const ops = await startOpsServer({ port: 0, maxConnectionsPerAddress: 8 })
    servers.push(ops)
    const flood = await halfOpen(ops.port, 60, '127.0.0.2')
    expect(stillOpen(flood)).toBe(8)
    expect((await fetch(`${ops.url}/healthz`)).status).toBe(200)
  })

  it('holds at most maxConnections in all (default 128, far below 500)', async () => {
    const ops = await startOpsServer({
      port: 0,
      maxConnections: 20,
      maxConnectionsPerAddress: 1000,
    })
    servers.push(ops)
    const flood = await halfOpen(ops.port, 60, '127.0.0.3')
    expect(stillOpen(flood)).toBeLessThanOrEqual(20)
    const defaults = await startOpsServer({ port: 0 })
    servers.push(defaults)
    const many = await halfOpen(defaults.port, 500, '127.0.0.4')
    expect(stillOpen(many)).toBeLessThanOrEqual(32) // the per-address default
  })
})

describe('--ops-public is loud', () => {
  const sealer = {
    describe: async () => ({ kind: 'tpm2', hardwareBacked: true }),
    wrap: async () => 'w',
    unwrap: async () => new Uint8Array(32),
  }
  const daemon = {
    peerId: '12D3KooWTest',
    keyguard: {
      status: async () => ({
        running: true,
        chain: { chainId: '1', head: 1, cursor: { number: 1 } },
        fastPath: { enabled: true },
      }),
      events: new EventTarget(),
    },
    peers: () => 0,
  }
  const owner = {
    status: async () => ({ operator: {} }),
    sealer,
    keyStore: { list: async () => [], get: async () => undefined },
  }

  it('the pi-node logs a warning line when the ops port listens beyond loopback, none on loopback', async () => {
    for (const [host, allowPublic, warned] of [
      ['0.0.0.0', true, true],
      [undefined, false, false],
    ] as const) {
      const dataDir = await mkdtemp(join(tmpdir(), 'ops-public-'))
      const lines: string[] = []
      const ops = await startPiNodeOps(owner, daemon, {
        dataDir,
        version: '0',
        port: 0,
        host,
        allowPublic,
        env: {},
        logger: createLogger({ stream: { write: (l: string) => lines.push(l) } }),
      })
      await ops.stop()
      await rm(dataDir, { recursive: true, force: true })
      const warns = lines.map((l) => JSON.parse(l)).filter((l) => l.level === 'warn')
      expect(warns.length).toBe(warned ? 1 : 0)
      if (warned)
        expect(warns[0].message).toMatch(/^OPS PORT IS PUBLIC \(--ops-public\): .*status page/)
    }
  })

  it('the executor-node too', async () => {
    const lines: string[] = []
    const ops = await startExecutorOps(
      () => 0,
      () => 0,
      {
        version: '0',
        port: 0,
        host: '0.0.0.0',
        allowPublic: true,
        env: {},
        logger: createLogger({ stream: { write: (l: string) => lines.push(l) } }),
        head: async () => 1,
      },
    )
    await ops.stop()
    const warn = lines.map((l) => JSON.parse(l)).find((l) => l.level === 'warn')
    expect(warn?.message).toMatch(/^OPS PORT IS PUBLIC/)
  })
})
