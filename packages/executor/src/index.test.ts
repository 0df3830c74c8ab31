import { DigicapError } from '@digicap/capsule-core'
import { expect, it } from 'vitest'
import * as api from './index.ts'

it('public surface is deliberate', () => {
  expect(Object.keys(api).sort()).toMatchInlineSnapshot(`
    [
      "BUNDLE_VERSION",
      "BundleFormatError",
      "DATA_RUNTIME_ID",
      "DEFAULT_MAX_BUNDLE_BYTES",
      "DEFAULT_RUNTIME_POLICY",
      "QUICKJS_RUNTIME_ID",
      "SandboxAbortedError",
      "SandboxCrashError",
      "SandboxLifecycleError",
      "SandboxMemoryError",
      "SandboxOutputLimitError",
      "SandboxRuntimeUnsupportedError",
      "SandboxTimeoutError",
      "WASI_RUNTIME_ID",
      "createRunWorkspace",
      "dataSandbox",
      "decodeBundle",
      "encodeBundle",
      "jobFromBundle",
      "quickjsSandbox",
      "resolveRuntime",
      "runInSandbox",
      "runLifecycle",
      "runtimeMeasurement",
      "sandboxFor",
      "wasiSandbox",
    ]
  `)
})

it.each([
  [api.SandboxTimeoutError, 'SandboxTimeoutError', 'SANDBOX_TIMEOUT'],
  [api.SandboxMemoryError, 'SandboxMemoryError', 'SANDBOX_MEMORY'],
  [api.SandboxCrashError, 'SandboxCrashError', 'SANDBOX_CRASH'],
  [api.SandboxOutputLimitError, 'SandboxOutputLimitError', 'SANDBOX_OUTPUT_LIMIT'],
  [
    api.SandboxRuntimeUnsupportedError,
    'SandboxRuntimeUnsupportedError',
    'SANDBOX_RUNTIME_UNSUPPORTED',
  ],
  [api.SandboxAbortedError, 'SandboxAbortedError', 'SANDBOX_ABORTED'],
  [api.SandboxLifecycleError, 'SandboxLifecycleError', 'SANDBOX_LIFECYCLE'],
  [api.BundleFormatError, 'BundleFormatError', 'BUNDLE_FORMAT'],
] as const)('%o has its name and code', (E, name, code) => {
  const e = new E('msg', { details: { a: 1 } })
  expect(e).toBeInstanceOf(DigicapError)
  expect(e.code).toBe(code)
  expect(e.name).toBe(name)
  expect(e.shortMessage).toBe('msg')
})
