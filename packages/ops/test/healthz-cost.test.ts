/**
 * What an unauthenticated /healthz costs the pi-node: the health rows are built once per request
 * (not once per check) and reused for a second with one build in flight, and the keyguard's
 * status() reads only the release journal's begun entries (its in-memory index). Real release
 * journal with thousands of served grants, real ops server.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createReleaseJournal } from '../../keyguard/src/index.ts'
import { createLogger, type PiNodeOps, startPiNodeOps } from '../src/index.ts'

const GRANTS = 2000
let ops: PiNodeOps | undefined
let dataDir: string | undefined
afterAll(async () => {
  await ops?.stop()
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
})

describe('/healthz cost', () => {
  it('one keyguard status() per request window, whatever the checks or the journal size', async () => {
    const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()
    dataDir = await mkdtemp(join(base, 'healthz-cost-'))
    const journalDir = join(dataDir, 'keyguard', 'journal')
    const writer = await createReleaseJournal(journalDir)
    const key = new Uint8Array(32).fill(7)
    await Promise.all(
      Array.from({ length: GRANTS }, async (_, i) => {
        const id = `0x${i.toString(16).padStart(64, '0')}`
        await writer.begin(id, key)
        await writer.complete(id)
      }),
    )
    await writer.begin(`0x${'ee'.repeat(32)}`, key)
    // The daemon opens its journal at start (as the keyguard does) and status() asks pending().
    const journal = await createReleaseJournal(journalDir)
    let statusCalls = 0
    let pendingMs = 0
    const canary = new Map<string, Uint8Array>()
    ops = await startPiNodeOps(
      {
        status: async () => ({ operator: {} }),
        sealer: {
          describe: async () => ({ kind: 'tpm2', hardwareBacked: true }),
          wrap: async (k: Uint8Array) => {
            canary.set('c', Uint8Array.from(k))
            return 'c'
          },
          unwrap: async () => Uint8Array.from(canary.get('c') ?? []),
        },
        keyStore: { list: async () => [], get: async () => undefined },
      },
      {
        peerId: '12D3KooWTest',
        keyguard: {
          status: async () => {
            statusCalls++
            const t0 = performance.now()
            const pending = await journal.pending()
            pendingMs += performance.now() - t0
            expect(pending).toHaveLength(1)
            return {
              running: true,
              chain: { chainId: '1', head: 10, cursor: { number: 10 } },
              fastPath: { enabled: true },
            }
          },
          events: new EventTarget(),
        },
        peers: () => 0,
      },
      {
        dataDir,
        version: '0',
        port: 0,
        host: undefined,
        allowPublic: false,
        env: {},
        logger: createLogger({ level: 'silent', stream: { write: () => {} } }),
      },
    )
    const url = `${ops.url}/healthz`
    const one = await fetch(url)
    expect(one.status).toBe(200)
    const body = (await one.json()) as { checks: Record<string, unknown> }
    expect(Object.keys(body.checks).sort()).toEqual(['chain', 'keyguard', 'tpm'])
    expect(statusCalls).toBe(1) // three checks, one status()
    // A flood of 30 at once (under the per-address connection cap) within the window: no more status() calls.
    const answers = await Promise.all(Array.from({ length: 30 }, () => fetch(url)))
    expect(answers.every((r) => r.status === 200)).toBe(true)
    expect(statusCalls).toBe(1)
    // After the window the next request builds the rows again, once.
    await new Promise((r) => setTimeout(r, 1100))
    await Promise.all(Array.from({ length: 10 }, () => fetch(url).then((r) => r.text())))
    expect(statusCalls).toBe(2)
    // pending() over 2000 served grants reads the one begun entry: milliseconds, not a folder scan.
    console.log(
      `journal ${GRANTS} grants: pending() ${(pendingMs / statusCalls).toFixed(2)} ms per status()`,
    )
  }, 120_000)
})
