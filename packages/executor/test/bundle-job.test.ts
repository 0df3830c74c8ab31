/**
 * What the executor adds to capsule-core's bundle format: a sandbox job from a bundle, and
 * the runtime limits from a header's runtime field. (The format's own tests are in
 * capsule-core's test/code-bundle.test.ts.)
 */
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_RUNTIME_POLICY,
  decodeBundle,
  encodeBundle,
  jobFromBundle,
  resolveRuntime,
} from '../src/index.ts'
import { enc, runtime } from './helpers.ts'

const bundle = { entry: 'main.js', files: { 'main.js': enc('1') }, data: enc('1,2') }
const failsWith = (code: string, details: Record<string, unknown>) =>
  expect.objectContaining({ code, details: expect.objectContaining(details) })

describe('bundle to job', () => {
  it('jobFromBundle picks the entry and checks it against the header', () => {
    const job = jobFromBundle(runtime('quickjs'), decodeBundle(encodeBundle(bundle)))
    expect(job.code).toEqual(bundle.files['main.js'])
    expect(job.input).toEqual(bundle.data)
    expect(() => jobFromBundle(runtime('quickjs', { entry: 'x.js' }), bundle)).toThrow(
      failsWith('BUNDLE_FORMAT', { reason: 'runtime entry does not match the bundle entry' }),
    )
    expect(jobFromBundle(runtime('data'), bundle).code.byteLength).toBe(0)
  })
})

describe('resolveRuntime (capsule header runtime field → sandbox limits)', () => {
  it('fills unset limits from the policy and keeps requested ones', () => {
    expect(resolveRuntime({ kind: 'quickjs', entry: 'main.js' })).toEqual({
      kind: 'quickjs',
      entry: 'main.js',
      memoryLimitBytes: DEFAULT_RUNTIME_POLICY.defaultMemoryLimitBytes,
      timeLimitMs: DEFAULT_RUNTIME_POLICY.defaultTimeLimitMs,
    })
    expect(
      resolveRuntime({ kind: 'wasi', entry: 'm.wasm', memoryLimit: 1 << 20, timeLimit: 500 }),
    ).toEqual({ kind: 'wasi', entry: 'm.wasm', memoryLimitBytes: 1 << 20, timeLimitMs: 500 })
    expect(resolveRuntime({ kind: 'data' }).entry).toBe('')
  })

  it.each([
    [{ kind: 'docker', entry: 'x' }, 'kind'],
    [{ kind: 'quickjs' }, 'entry'],
    [{ kind: 'quickjs', entry: 'a', memoryLimit: 2 ** 40 }, 'memoryLimit'],
    [{ kind: 'quickjs', entry: 'a', timeLimit: 0 }, 'timeLimit'],
    [{ kind: 'quickjs', entry: 'a', timeLimit: 1.5 }, 'timeLimit'],
  ])('refuses %o with SANDBOX_RUNTIME_UNSUPPORTED', (req, field) => {
    expect(() => resolveRuntime(req)).toThrow(
      failsWith(
        'SANDBOX_RUNTIME_UNSUPPORTED',
        field === 'entry' ? {} : { [field]: expect.anything() },
      ),
    )
  })

  it('honours a policy that disables a kind', () => {
    const policy = { ...DEFAULT_RUNTIME_POLICY, kinds: ['data'] as const }
    expect(() => resolveRuntime({ kind: 'wasi', entry: 'm' }, policy)).toThrow(
      failsWith('SANDBOX_RUNTIME_UNSUPPORTED', {}),
    )
  })
})
