import { randomUUID } from 'node:crypto'
import { DigicapError, type RunMeasurements, runtimeMeasurement } from '@digicap/capsule-core'
import { SandboxLifecycleError } from '../errors.ts'
import type { Sandbox, SandboxJob, SandboxResult } from '../sandbox/types.ts'
import type { RunLifecycle } from './lifecycle.ts'
import { type CleanupReport, createRunWorkspace, type RunWorkspace } from './workspace.ts'

export interface RunInSandboxParameters {
  readonly sandbox: Sandbox
  readonly job: SandboxJob
  /** Receives before-load, after-load, after-run and after-cleanup. */
  readonly lifecycle?: RunLifecycle | undefined
  /** A workspace the caller already tracks key buffers in; made fresh when omitted. */
  readonly workspace?: RunWorkspace | undefined
  /** Extra secrets to zero at clean-up (data key, ephemeral private key). */
  readonly secrets?: readonly Uint8Array[] | undefined
  /** Zero `job.code` and `job.input` at clean-up (default true: they are plaintext). */
  readonly zeroJob?: boolean | undefined
  readonly runId?: string | undefined
  readonly signal?: AbortSignal | undefined
}

export interface RunInSandboxReturnType {
  readonly runId: string
  readonly result: SandboxResult
  readonly measurements: RunMeasurements
  readonly cleanup: CleanupReport
}

/**
 * One run, start to finish: announce, measure, run in the sandbox, clean up, report.
 * Clean-up always happens, also when the program fails; the typed error is rethrown after
 * `after-cleanup` has been emitted. This is the seam the loader, the access requester and
 * result delivery plug into: they pass the decrypted job and the secrets to wipe.
 *
 * @throws the sandbox's typed errors, or SandboxLifecycleError if a listener fails.
 * @example
 * ```ts
 * const lifecycle = runLifecycle()
 * lifecycle.on('after-load', ({ measurements }) => extendPcr(measurements.run))
 * const { result, cleanup } = await runInSandbox({ sandbox, job, lifecycle, secrets: [dataKey] })
 * ```
 */
export async function runInSandbox(p: RunInSandboxParameters): Promise<RunInSandboxReturnType> {
  const runId = p.runId ?? randomUUID()
  const ws = p.workspace ?? createRunWorkspace()
  const { job, sandbox, lifecycle } = p
  for (const s of p.secrets ?? []) ws.trackBuffer(s)
  if (p.zeroJob !== false) {
    ws.trackBuffer(job.code)
    ws.trackBuffer(job.input)
  }
  let result: SandboxResult | undefined
  let measurements: RunMeasurements | undefined
  let failure: unknown
  try {
    await lifecycle?.emit('before-load', {
      runId,
      kind: job.runtime.kind,
      entry: job.runtime.entry,
      runtimeId: sandbox.runtimeId,
      codeBytes: job.code.byteLength,
      inputBytes: job.input.byteLength,
    })
    measurements = runtimeMeasurement({
      runtimeId: sandbox.runtimeId,
      runtime: job.runtime,
      code: job.code,
      input: job.input,
    })
    await lifecycle?.emit('after-load', { runId, measurements })
    try {
      result = await sandbox.run(job, { signal: p.signal, workspace: ws })
    } catch (err) {
      failure = err
    }
    await lifecycle?.emit('after-run', {
      runId,
      ok: failure === undefined,
      errorCode: failure instanceof DigicapError ? failure.code : failure ? 'UNKNOWN' : undefined,
      stats: result?.stats,
      outputBytes: result?.output.byteLength,
    })
  } catch (err) {
    failure ??= err
  }
  const cleanup = await ws.dispose()
  try {
    await lifecycle?.emit('after-cleanup', { runId, report: cleanup })
  } catch (err) {
    failure ??= err
  }
  if (failure !== undefined) throw failure
  if (!result || !measurements) {
    throw new SandboxLifecycleError('Run produced no result')
  }
  return { runId, result, measurements, cleanup }
}
