import { afterEach, describe, expect, it } from 'vitest'
import {
  createNodeMetrics,
  isLoopbackHost,
  type OpsServer,
  observeKeyguardEvents,
  observeRuns,
  observeSealer,
  startOpsServer,
} from '../src/index.ts'

const servers: OpsServer[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close()
})

describe('startOpsServer', () => {
  it('refuses a public interface unless forced, with a typed error', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
      const err = await startOpsServer({ host, port: 0 }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'OPS_LISTEN', details: { host } })
    }
    expect(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost'].every(isLoopbackHost)).toBe(true)
    // Forced: it listens (on all interfaces), as the operator asked.
    const forced = await startOpsServer({ host: '0.0.0.0', port: 0, allowPublic: true })
    servers.push(forced)
    expect(forced.host).toBe('0.0.0.0')
  })

  it('a port in use is a typed error, not a crash', async () => {
    const first = await startOpsServer({ port: 0 })
    servers.push(first)
    const err = await startOpsServer({ port: first.port }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'OPS_LISTEN', details: { code: 'EADDRINUSE' } })
  })

  it('/metrics shows counters fed by keyguard events, runs and sealer calls; /healthz reports checks', async () => {
    const metrics = createNodeMetrics('pi-node', {
      peers: () => 4,
      capsulesGuarded: async () => 2,
      grantWatcherLag: () => 3,
    })
    const events = new EventTarget()
    const stop = observeKeyguardEvents(metrics, events)
    const fire = (detail: Record<string, unknown>) =>
      events.dispatchEvent(new CustomEvent(String(detail.type), { detail }))
    fire({ type: 'released', grantId: '0x1', attempts: 1 })
    fire({ type: 'fast-path-granted', grantId: '0x2', capsuleId: '0x3', executor: 'e', ms: 42 })
    fire({ type: 'grant-refused', grantId: '0x4', reason: 'not-attested' })
    fire({ type: 'fast-path-refused', reasonCode: 'RATE_LIMITED', peer: 'p' })
    stop()
    fire({ type: 'released', grantId: '0x5', attempts: 1 }) // not counted after stop

    const executor = {
      runs: 0,
      async runCapsule(cid: string) {
        this.runs++
        if (cid === 'boom') throw Object.assign(new Error('t'), { code: 'SANDBOX_TIMEOUT' })
        return { path: 'fast', deliveries: [{ status: 'delivered' }, { status: 'stored' }] }
      },
    }
    const observed = observeRuns(metrics, executor)
    await observed.runCapsule('ok')
    await expect(observed.runCapsule('boom')).rejects.toMatchObject({ code: 'SANDBOX_TIMEOUT' })
    expect(executor.runs).toBe(2)

    const sealer = { unwrap: async (x: number) => x + 1 }
    const restore = observeSealer(metrics, sealer)
    expect(await sealer.unwrap(1)).toBe(2)
    restore()

    const ops = await startOpsServer({
      port: 0,
      metrics,
      health: {
        chain: () => ({ ok: true, detail: { head: 7 } }),
        tpm: async () => {
          throw Object.assign(new Error('x'), { code: 'TPM_UNREACHABLE' })
        },
      },
    })
    servers.push(ops)
    const text = await (await fetch(`${ops.url}/metrics`)).text()
    for (const line of [
      'digicap_releases_served_total{path="chain"} 1',
      'digicap_releases_served_total{path="fast"} 1',
      'digicap_releases_refused_total{path="chain",reason="not-attested"} 1',
      'digicap_releases_refused_total{path="fast",reason="RATE_LIMITED"} 1',
      'digicap_fast_path_latency_seconds_bucket{le="0.05"} 1',
      'digicap_fast_path_latency_seconds_count 1',
      'digicap_tpm_op_seconds_count{op="unwrap"} 1',
      'digicap_runs_executed_total{outcome="ok",path="fast"} 1',
      'digicap_runs_executed_total{outcome="failed",path="unknown"} 1',
      'digicap_sandbox_failures_total{kind="SANDBOX_TIMEOUT"} 1',
      'digicap_results_delivered_total{status="delivered"} 1',
      'digicap_peers 4',
      'digicap_capsules_guarded 2',
      'digicap_grant_watcher_lag_blocks 3',
      'digicap_info{app="pi-node",version="unknown"} 1',
    ])
      expect(text).toContain(line)
    expect(text).toMatch(/process_resident_memory_bytes \d+/)

    const health = await fetch(`${ops.url}/healthz`)
    expect(health.status).toBe(503)
    expect(await health.json()).toEqual({
      ok: false,
      checks: {
        chain: { ok: true, detail: { head: 7 } },
        tpm: { ok: false, detail: { error: 'TPM_UNREACHABLE' } },
      },
    })
    expect((await fetch(`${ops.url}/nope`)).status).toBe(404)
    expect((await fetch(`${ops.url}/metrics`, { method: 'POST' })).status).toBe(405)
  })

  it('a hanging health check times out as not ok', async () => {
    const ops = await startOpsServer({
      port: 0,
      healthTimeoutMs: 100,
      health: { rpc: () => new Promise(() => {}) },
    })
    servers.push(ops)
    const res = await fetch(`${ops.url}/healthz`)
    expect(res.status).toBe(503)
    expect(await res.json()).toMatchObject({
      checks: { rpc: { ok: false, detail: { error: 'timeout' } } },
    })
  })
})
