/**
 * @packageDocumentation
 *
 * `@digicap/executor` — runs capsule code with no ambient authority, cleans up after it,
 * and announces each step so the attestation agent can measure the run.
 *
 * Guarantees (and their limits; see README "Guarantees"):
 * - `quickjs`: the program sees the ECMAScript built-ins and a `digicap` object (input,
 *   output, log, args) — no `require`, `import`, `process`, `fetch`, timers, file system,
 *   network or host objects. It runs in QuickJS compiled to WebAssembly, in a fresh runtime
 *   in a fresh worker thread per run, with a heap limit, a stack limit and an interrupt-based
 *   deadline; the host terminates the worker if the program overruns the deadline anyway.
 * - `wasi`: a WASI preview-1 module sees one preopened temp directory with `/input` and an
 *   empty `/out/`, an empty environment, no sockets; its memory maximum is rewritten to the
 *   limit, every write is metered, and the host terminates the worker at the deadline.
 * - Every stop is a typed error (`SANDBOX_TIMEOUT`, `SANDBOX_MEMORY`, `SANDBOX_CRASH`,
 *   `SANDBOX_OUTPUT_LIMIT`, …); the host process keeps running.
 * - `runInSandbox` always cleans up — temp files overwritten and removed, key and plaintext
 *   buffers zeroed, workers terminated — and reports what it cleaned in `after-cleanup`.
 * - Program text in errors and logs is untrusted: it is stripped of control characters and
 *   bounded.
 *
 * @example
 * ```ts
 * import { quickjsSandbox, runInSandbox, runLifecycle } from '@digicap/executor'
 *
 * const lifecycle = runLifecycle()
 * lifecycle.on('after-load', ({ measurements }) => console.log('measured', measurements.run))
 * const { result, cleanup } = await runInSandbox({
 *   sandbox: quickjsSandbox(),
 *   lifecycle,
 *   job: {
 *     runtime: { kind: 'quickjs', entry: 'main.js', memoryLimitBytes: 32 << 20, timeLimitMs: 2000 },
 *     code: new TextEncoder().encode('digicap.output(digicap.inputText().toUpperCase())'),
 *     input: new TextEncoder().encode('hello'),
 *   },
 * })
 * // result.output → "HELLO"; cleanup.bytesZeroed > 0
 * ```
 */

// The bundle format and the run measurement are capsule-core's (one copy); re-exported here.
export type {
  Bundle,
  DecodeBundleOptions,
  RunMeasurements,
  RuntimeMeasurementParameters,
} from '@digicap/capsule-core'
export {
  BUNDLE_VERSION,
  DEFAULT_MAX_BUNDLE_BYTES,
  decodeBundle,
  encodeBundle,
  runtimeMeasurement,
} from '@digicap/capsule-core'
// The result receiver moved to @digicap/protocol (receivers need no executor); re-exported.
// The receiver's replay file lives with the receiver in @digicap/protocol (the SDK uses it too).
export type {
  FileResultReplaysComponents,
  FileResultReplaysInit,
  ReceivedResult,
  ResultReceiver,
  ResultReceiverComponents,
  ResultReceiverInit,
  ResultReceiverStats,
  ResultReplayStore,
} from '@digicap/protocol'
// The receiver's errors live with the receiver in @digicap/protocol (the deliverer throws the
// same ResultRefusedError for a final refusal); re-exported here, not from errors.ts, which
// the run entry loads without libp2p.
export {
  createResultReceiver,
  fileResultReplays,
  ResultInvalidError,
  ResultRefusedError,
} from '@digicap/protocol'
export type {
  AccessParameters,
  ReleasedKey,
  ReleaseInbox,
  ReleaseInboxEvent,
  ReleaseInboxLimits,
} from './access/requester.ts'
export { acquireKey, createReleaseInbox } from './access/requester.ts'
export type {
  AutoRunEvent,
  AutoRunIgnoreReason,
  AutoRunner,
  AutoRunnerComponents,
  AutoRunnerInit,
  AutoRunnerStats,
} from './auto-run.ts'
export { autoRunner } from './auto-run.ts'
export type {
  ChainAccessRequest,
  ChainGrant,
  EthersExecutorChainInit,
  ExecutorChain,
  RegisteredCapsule,
} from './chain.ts'
export { ethersExecutorChain } from './chain.ts'
export type {
  Delivery,
  ResultDeliverer,
  ResultDelivererComponents,
  ResultDelivererInit,
  ResultIds,
} from './delivery/deliverer.ts'
export { createResultDeliverer } from './delivery/deliverer.ts'
export type { EthersResultGrantsInit, ResultGrantSource } from './delivery/grants.ts'
export { ethersResultGrants } from './delivery/grants.ts'
export type {
  FilePendingDeliveriesComponents,
  FilePendingDeliveriesInit,
  PendingDeliveryStore,
  PendingRecord,
} from './delivery/pending-file.ts'
export { filePendingDeliveries } from './delivery/pending-file.ts'
export type { FindRecordedGrantParameters, RecordedGrantReader } from './delivery/recorded-grant.ts'
export { findRecordedGrant } from './delivery/recorded-grant.ts'
export type { ExecutorErrorCode } from './errors.ts'
export {
  AccessDeniedError,
  AccessRefusedError,
  AccessUnavailableError,
  BundleFormatError,
  CapsuleFetchError,
  CapsuleFetchTimeoutError,
  CapsuleUnverifiedError,
  ExecutorStateError,
  KeyReleaseInvalidError,
  KeyReleaseTimeoutError,
  OciStateDirError,
  PayloadIntegrityError,
  RegistryMismatchError,
  ResultDeliveryError,
  RunPcrNotResetError,
  RunQueueFullError,
  SandboxAbortedError,
  SandboxCrashError,
  SandboxLifecycleError,
  SandboxMemoryError,
  SandboxOutputLimitError,
  SandboxRuntimeUnsupportedError,
  SandboxTimeoutError,
} from './errors.ts'
export type {
  Executor,
  ExecutorComponents,
  ExecutorInit,
  RunCapsuleOptions,
  RunCapsuleResult,
  RunStage,
  RunTimings,
  StageEvent,
} from './executor.ts'
export { createExecutor, environmentMeasurement } from './executor.ts'
export { jobFromBundle } from './load/bundle.ts'
export type { FetchProgress, LoadCapsuleParameters, LoadedCapsule } from './load/loader.ts'
export { DEFAULT_FETCH_TIMEOUT_MS, loadCapsule, verifyCapsule } from './load/loader.ts'
export type {
  RunAttestationAgent,
  RunCleanupStatement,
  RunMeasurementPlan,
  RunMeasurementValues,
} from './run/attestation.ts'
export type {
  RunLifecycle,
  RunLifecycleEvent,
  RunLifecycleEvents,
  RunLifecycleListener,
} from './run/lifecycle.ts'
export { runLifecycle } from './run/lifecycle.ts'
// What an executor node's front end (a CLI, a daemon) composes: the stock sandboxes, and a
// run's progress as text.
export { progressLines, stageLine } from './run/progress-lines.ts'
export type { RunInSandboxParameters, RunInSandboxReturnType } from './run/run.ts'
export { runInSandbox } from './run/run.ts'
export type { RunTurn, RunTurns } from './run/turns.ts'
export { createRunTurns, DEFAULT_MAX_WAITING_RUNS } from './run/turns.ts'
export type { CleanupReport, RunWorkspace, RunWorkspaceInit } from './run/workspace.ts'
export { createRunWorkspace } from './run/workspace.ts'
export type {
  DataFileHandler,
  DataHandler,
  DataHandlerContext,
  DataSandboxInit,
} from './sandbox/data.ts'
export { DATA_RUNTIME_ID, dataSandbox } from './sandbox/data.ts'
export { defaultSandboxes } from './sandbox/defaults.ts'
export type { OciRunStep, OciSandboxInit } from './sandbox/oci/oci-sandbox.ts'
export { ociSandbox } from './sandbox/oci/oci-sandbox.ts'
export type { SweepReport } from './sandbox/oci/run-dir.ts'
export { defaultOciStateDir, sweepOciLeftovers } from './sandbox/oci/run-dir.ts'
export type { QuickJsSandboxInit } from './sandbox/quickjs/sandbox.ts'
export { QUICKJS_RUNTIME_ID, quickjsSandbox } from './sandbox/quickjs/sandbox.ts'
export type { RuntimePolicy, RuntimeRequirementsLike } from './sandbox/runtime.ts'
export { DEFAULT_RUNTIME_POLICY, resolveRuntime } from './sandbox/runtime.ts'
export type { SandboxSet } from './sandbox/select.ts'
export { sandboxFor } from './sandbox/select.ts'
export type {
  JobInputFile,
  OutputLimits,
  RuntimeDescriptor,
  RuntimeKind,
  Sandbox,
  SandboxJob,
  SandboxResult,
  SandboxRunOptions,
  SandboxStats,
} from './sandbox/types.ts'
export type { WasiSandboxInit } from './sandbox/wasi/sandbox.ts'
export { WASI_RUNTIME_ID, wasiSandbox } from './sandbox/wasi/sandbox.ts'
