/** ADR 0021: the measurement an attested access request carries, and the runtime digest it opens to. */
import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  InvalidArgumentError,
  requestMeasurement,
  runtimeDigest,
  runtimeMeasurement,
} from '../src/index.ts'

const runtime = { kind: 'quickjs', entry: 'main.js', memoryLimitBytes: 1 << 24, timeLimitMs: 5000 }

describe('requestMeasurement', () => {
  it('is SHA-256(runtime digest ‖ header hash), the runtime digest being the run measurement’s', () => {
    const r = runtimeDigest('quickjs-0.32.0', runtime)
    const m = runtimeMeasurement({
      runtimeId: 'quickjs-0.32.0',
      runtime,
      code: new Uint8Array([1]),
      input: new Uint8Array([2]),
      chunkSize: 64,
    })
    expect(r).toEqual(m.runtime)
    const h = new Uint8Array(randomBytes(32))
    const want = createHash('sha256').update(r).update(h).digest()
    expect(Buffer.from(requestMeasurement(r, h))).toEqual(want)
    // another runtime id, limit or header gives another measurement
    expect(requestMeasurement(runtimeDigest('quickjs-0.33.0', runtime), h)).not.toEqual(
      requestMeasurement(r, h),
    )
    expect(
      requestMeasurement(runtimeDigest('quickjs-0.32.0', { ...runtime, timeLimitMs: 5001 }), h),
    ).not.toEqual(requestMeasurement(r, h))
  })

  it('refuses values that are not 32 bytes with a typed error', () => {
    const ok = new Uint8Array(32)
    for (const [a, b] of [
      [new Uint8Array(31), ok],
      [ok, new Uint8Array(33)],
      ['x' as unknown as Uint8Array, ok],
    ] as const) {
      expect(() => requestMeasurement(a, b)).toThrow(InvalidArgumentError)
    }
  })
})
