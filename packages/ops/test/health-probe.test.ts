/**
 * The health checks' cache and the sealer probe, with sealers that lie or hang (fault
 * injection; the real swtpm stopped and restarted is apps/pi-node's test/tpm-health.test.ts).
 */
import { describe, expect, it } from 'vitest'
import { cachedAnswer, HealthProbeError, sealerProbe } from '../src/index.ts'

/** An in-memory sealer: wrap keeps a copy; `mode` makes unwrap lie, hang or fail. */
function sealer(mode: { value: 'ok' | 'lie' | 'hang' | 'down' }) {
  const calls = { wrap: 0, unwrap: 0 }
  const s = {
    calls,
    describe: async () => ({ kind: 'test', hardwareBacked: false }),
    wrap: async (k: Uint8Array) => {
      calls.wrap++
      return { copy: k.slice() }
    },
    unwrap: async (w: { copy: Uint8Array }) => {
      calls.unwrap++
      if (mode.value === 'hang') return new Promise<Uint8Array>(() => {})
      if (mode.value === 'down')
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'TPM_UNAVAILABLE' })
      const out = w.copy.slice()
      if (mode.value === 'lie') out[0] = (out[0] ?? 0) ^ 1
      return out
    },
  }
  return s
}

describe('sealerProbe', () => {
  it('unwraps the canary it wrapped once; a lying unwrap, a hang and a failure are errors', async () => {
    const mode = { value: 'ok' as 'ok' | 'lie' | 'hang' | 'down' }
    const s = sealer(mode)
    const probe = sealerProbe(s as never, { timeoutMs: 200 })
    expect(await probe()).toMatchObject({ kind: 'test', hardwareBacked: false })
    await probe()
    expect(s.calls).toEqual({ wrap: 1, unwrap: 2 })
    mode.value = 'lie'
    await expect(probe()).rejects.toMatchObject({
      code: 'HEALTH_PROBE',
      details: { reason: 'mismatch' },
    })
    mode.value = 'hang'
    const t0 = performance.now()
    const err = await probe().catch((e) => e)
    expect(err).toBeInstanceOf(HealthProbeError)
    expect(err.details.reason).toBe('timeout')
    expect(performance.now() - t0).toBeLessThan(5_000)
    mode.value = 'down'
    await expect(probe()).rejects.toMatchObject({ code: 'TPM_UNAVAILABLE' })
    mode.value = 'ok'
    await expect(probe()).resolves.toMatchObject({ kind: 'test' })
  })

  it('holds the methods it was built with: a wrapper added later does not see the probes', async () => {
    const s = sealer({ value: 'ok' })
    const probe = sealerProbe(s as never)
    let seen = 0
    const original = s.unwrap
    s.unwrap = async (w) => {
      seen++
      return original(w)
    }
    await probe()
    expect(seen).toBe(0)
  })
})

describe('cachedAnswer', () => {
  it('one read per window, failures kept too, callers share the read in flight', async () => {
    let reads = 0
    let fail = false
    const read = async () => {
      reads++
      await new Promise((r) => setTimeout(r, 20))
      if (fail) throw new Error('down')
      return reads
    }
    const check = cachedAnswer(300, read)
    expect(await Promise.all([check(), check(), check()])).toEqual([1, 1, 1])
    expect(await check()).toBe(1)
    fail = true
    await new Promise((r) => setTimeout(r, 320))
    await expect(check()).rejects.toThrow('down')
    // A hammered failing check still reads once per window.
    for (let i = 0; i < 20; i++) await expect(check()).rejects.toThrow('down')
    expect(reads).toBe(2)
    fail = false
    await new Promise((r) => setTimeout(r, 320))
    expect(await check()).toBe(3)
  })
})
