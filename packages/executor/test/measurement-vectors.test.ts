/**
 * The measurement rules of protocol SPEC §3.4.4, checked against this package's code: the
 * vectors come from `@digicap/protocol`'s generator, which computes them from the spec text
 * on its own.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import {
  dataSandbox,
  environmentMeasurement,
  quickjsSandbox,
  runtimeMeasurement,
} from '../src/index.ts'

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex')
function vector(name: string): Record<string, string> {
  const url = new URL(`../../protocol/test/result-vectors/${name}`, import.meta.url)
  const out: Record<string, string> = {}
  for (const line of readFileSync(fileURLToPath(url), 'utf8').split('\n')) {
    const i = line.indexOf(': ')
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 2)
  }
  return out
}

describe('measurement vectors (protocol SPEC §3.4.4)', () => {
  it('runtimeMeasurement gives the run measurement of rule-run-measurement', () => {
    const v = vector('rule-run-measurement.txt')
    const m = runtimeMeasurement({
      runtimeId: v['runtime-id'] as string,
      runtime: {
        kind: v.kind as 'quickjs',
        entry: v.entry as string,
        memoryLimitBytes: Number(v['memory-limit-bytes']),
        timeLimitMs: Number(v['time-limit-ms']),
      },
      code: Buffer.from(v.code as string, 'hex'),
      input: Buffer.from(v.input as string, 'hex'),
      chunkSize: Number(v['chunk-size']),
    })
    expect(hexOf(m.runtime)).toBe(v['runtime-digest'])
    expect(hexOf(m.code)).toBe(v['code-digest'])
    expect(hexOf(m.payload)).toBe(v['payload-digest'])
    expect(hexOf(m.run)).toBe(v['run-measurement'])
  })

  it('environmentMeasurement of the real data and QuickJS sandboxes is rule-environment-measurement', () => {
    const v = vector('rule-environment-measurement.txt')
    const sandboxes = { data: dataSandbox(() => ''), quickjs: quickjsSandbox() }
    expect(sandboxes.data.runtimeId).toBe(v['runtime-data'])
    expect(sandboxes.quickjs.runtimeId).toBe(v['runtime-quickjs'])
    expect(hexOf(environmentMeasurement(sandboxes))).toBe(v.measurement)
  })
})
