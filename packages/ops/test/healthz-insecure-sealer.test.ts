/**
 * `/healthz`'s tpm check and a sealer that is not hardware-backed (the software key file, or
 * swtpm): red unless the operator accepts it (`serve --allow-software-sealer`), so monitoring
 * alerts on a keyguard running on the insecure fallback. Real pi-node ops port.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createLogger, startPiNodeOps } from '../src/index.ts'

async function healthz(hardwareBacked: boolean, allowSoftwareSealer: boolean | undefined) {
  const dataDir = await mkdtemp(join(tmpdir(), 'ops-insecure-'))
  const canary = new Map<string, Uint8Array>()
  const ops = await startPiNodeOps(
    {
      status: async () => ({ operator: {} }),
      sealer: {
        describe: async () => ({ kind: hardwareBacked ? 'tpm2' : 'software', hardwareBacked }),
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
        status: async () => ({
          running: true,
          chain: { chainId: '31337', head: 10, cursor: { number: 10 } },
          fastPath: { enabled: true },
        }),
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
      ...(allowSoftwareSealer === undefined ? {} : { allowSoftwareSealer }),
      env: {},
      logger: createLogger({ level: 'silent', stream: { write: () => {} } }),
    },
  )
  try {
    const res = await fetch(`${ops.url}/healthz`)
    const body = (await res.json()) as {
      ok: boolean
      checks: Record<string, { ok: boolean; detail: { text: string } }>
    }
    return { status: res.status, body }
  } finally {
    await ops.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

describe('/healthz tpm check and the insecure sealer', () => {
  it('is red for a sealer that is not hardware-backed unless accepted', async () => {
    for (const allow of [undefined, false]) {
      const { status, body } = await healthz(false, allow)
      expect(status).toBe(503)
      expect(body.ok).toBe(false)
      expect(body.checks.tpm?.ok).toBe(false)
      expect(body.checks.tpm?.detail.text).toContain('NOT hardware-backed (not accepted')
      expect(body.checks.chain?.ok).toBe(true)
    }
  })

  it('is green for it when the operator accepts it explicitly', async () => {
    const { status, body } = await healthz(false, true)
    expect(status).toBe(200)
    expect(body.checks.tpm?.ok).toBe(true)
    expect(body.checks.tpm?.detail.text).toMatch(
      /^software NOT hardware-backed \(accepted\), unwrap/,
    )
  })

  it('is green for a hardware-backed sealer without being told', async () => {
    const { status, body } = await healthz(true, undefined)
    expect(status).toBe(200)
    expect(body.checks.tpm?.detail.text).toMatch(/^tpm2 hardware-backed, unwrap/)
  })
})
