import { DigicapError } from '@digicap/capsule-core'
import { expect, it } from 'vitest'
import * as api from './index.ts'

it('public surface is deliberate', () => {
  expect(Object.keys(api).sort()).toMatchInlineSnapshot(`
    [
      "AccessDeniedError",
      "AccessRefusedError",
      "AccessUnavailableError",
      "BUNDLE_VERSION",
      "BundleFormatError",
      "CapsuleFetchError",
      "CapsuleFetchTimeoutError",
      "CapsuleUnverifiedError",
      "DATA_RUNTIME_ID",
      "DEFAULT_FETCH_TIMEOUT_MS",
      "DEFAULT_MAX_BUNDLE_BYTES",
      "DEFAULT_MAX_WAITING_RUNS",
      "DEFAULT_RUNTIME_POLICY",
      "ExecutorStateError",
      "KeyReleaseInvalidError",
      "KeyReleaseTimeoutError",
      "OciStateDirError",
      "PayloadIntegrityError",
      "QUICKJS_RUNTIME_ID",
      "RegistryMismatchError",
      "ResultDeliveryError",
      "ResultInvalidError",
      "ResultRefusedError",
      "RunPcrNotResetError",
      "RunQueueFullError",
      "SandboxAbortedError",
      "SandboxCrashError",
      "SandboxLifecycleError",
      "SandboxMemoryError",
      "SandboxOutputLimitError",
      "SandboxRuntimeUnsupportedError",
      "SandboxTimeoutError",
      "WASI_RUNTIME_ID",
      "acquireKey",
      "autoRunner",
      "createExecutor",
      "createReleaseInbox",
      "createResultDeliverer",
      "createResultReceiver",
      "createRunTurns",
      "createRunWorkspace",
      "dataSandbox",
      "decodeBundle",
      "defaultOciStateDir",
      "defaultSandboxes",
      "encodeBundle",
      "environmentMeasurement",
      "ethersExecutorChain",
      "ethersResultGrants",
      "filePendingDeliveries",
      "fileResultReplays",
      "findRecordedGrant",
      "jobFromBundle",
      "loadCapsule",
      "ociSandbox",
      "progressLines",
      "quickjsSandbox",
      "resolveRuntime",
      "runInSandbox",
      "runLifecycle",
      "runtimeMeasurement",
      "sandboxFor",
      "stageLine",
      "sweepOciLeftovers",
      "verifyCapsule",
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
  [api.OciStateDirError, 'OciStateDirError', 'OCI_STATE_DIR'],
  [api.BundleFormatError, 'BundleFormatError', 'BUNDLE_FORMAT'],
] as const)('%o has its name and code', (E, name, code) => {
  const e = new E('msg', { details: { a: 1 } })
  expect(e).toBeInstanceOf(DigicapError)
  expect(e.code).toBe(code)
  expect(e.name).toBe(name)
  expect(e.shortMessage).toBe('msg')
})

it.each([
  [api.CapsuleFetchError, 'CapsuleFetchError', 'CAPSULE_FETCH'],
  [api.CapsuleUnverifiedError, 'CapsuleUnverifiedError', 'CAPSULE_UNVERIFIED'],
  [api.RegistryMismatchError, 'RegistryMismatchError', 'REGISTRY_MISMATCH'],
  [api.AccessUnavailableError, 'AccessUnavailableError', 'ACCESS_UNAVAILABLE'],
  [api.KeyReleaseTimeoutError, 'KeyReleaseTimeoutError', 'KEY_RELEASE_TIMEOUT'],
  [api.KeyReleaseInvalidError, 'KeyReleaseInvalidError', 'KEY_RELEASE_INVALID'],
  [api.PayloadIntegrityError, 'PayloadIntegrityError', 'PAYLOAD_INTEGRITY'],
  [api.ResultDeliveryError, 'ResultDeliveryError', 'RESULT_DELIVERY'],
  [api.ResultInvalidError, 'ResultInvalidError', 'RESULT_INVALID'],
  [api.ExecutorStateError, 'ExecutorStateError', 'EXECUTOR_STATE'],
  [api.RunPcrNotResetError, 'RunPcrNotResetError', 'RUN_PCR_NOT_RESET'],
  [api.RunQueueFullError, 'RunQueueFullError', 'RUN_QUEUE_FULL'],
] as const)('%o has its name and code', (E, name, code) => {
  const e = new E('msg', { details: { a: 1 } })
  expect(e).toBeInstanceOf(DigicapError)
  expect(e.code).toBe(code)
  expect(e.name).toBe(name)
  expect(e.shortMessage).toBe('msg')
})

it('AccessDeniedError and AccessRefusedError carry the reason', () => {
  const d = new api.AccessDeniedError('MAX_RUNS_REACHED', 'fast')
  expect(d.code).toBe('ACCESS_DENIED')
  expect(d.reason).toBe('MAX_RUNS_REACHED')
  expect(d.details).toEqual({ reason: 'MAX_RUNS_REACHED', path: 'fast' })
  expect(d.shortMessage).toContain('MAX_RUNS_REACHED')
  const r = new api.AccessRefusedError('rate-limited', { details: { retryAfterMs: 5 } })
  expect(r.code).toBe('ACCESS_REFUSED')
  expect(r.reasonCode).toBe('rate-limited')
  expect(r.details).toEqual({ reasonCode: 'rate-limited', retryAfterMs: 5 })
})
