import { randomUUID } from 'node:crypto'
import { access } from 'node:fs/promises'
import {
  DigicapError,
  equalBytes,
  type RunMeasurements,
  runtimeMeasurement,
} from '@digicap/capsule-core'
import { SandboxLifecycleError } from '../errors.ts'
import { jobPayloadDigest } from '../sandbox/job-payload-digest.ts'
import type { Sandbox, SandboxJob, SandboxResult } from '../sandbox/types.ts'
import type { RunCleanupStatement, RunMeasurementPlan } from './attestation.ts'
import type { RunLifecycle } from './lifecycle.ts'
import { checkPlaintextUnchanged } from './plaintext-stamp.ts'
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
  /**
   * Measure the run into PCR 23 (ADR 0021): the agent extends the four values after load, and
   * after clean-up resets PCR 23 with the clean-up statement. Omitted: nothing is measured.
   * The caller holds the TPM's turn (`createRunTurns`) around the whole run.
   */
  readonly measure?: RunMeasurementPlan | undefined
}

export interface RunInSandboxReturnType {
  readonly runId: string
  readonly result: SandboxResult
  readonly measurements: RunMeasurements
  readonly cleanup: CleanupReport
  /** What the agent was told after clean-up, when the run was measured. */
  readonly attestation?: RunCleanupStatement | undefined
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
  // Set once the agent may have extended PCR 23: from then on clean-up ends with its reset.
  let measured = false
  try {
    await lifecycle?.emit('before-load', {
      runId,
      kind: job.runtime.kind,
      entry: job.runtime.entry,
      runtimeId: sandbox.runtimeId,
      codeBytes: job.code.byteLength,
      inputBytes: job.inputFile?.size ?? job.input.byteLength,
      ...(p.measure ? { attestation: p.measure.values } : {}),
    })
    // The digest below is the open's: only for the very file it wrote (ADR 0055).
    if (job.inputFile) await checkPlaintextUnchanged(job.inputFile)
    measurements = runtimeMeasurement({
      runtimeId: sandbox.runtimeId,
      runtime: job.runtime,
      code: job.code,
      // The open's, from the commitment's leaves (ADR 0059): the payload is not read again.
      payloadDigest: jobPayloadDigest(job),
    })
    if (p.measure) {
      // The request declared this runtime digest: never measure (or run) anything else.
      if (!equalBytes(measurements.runtime, p.measure.values.runtimeDigest)) {
        throw new SandboxLifecycleError('The runtime to run is not the one the request declared', {
          details: { runId },
        })
      }
      measured = true
      try {
        await p.measure.agent.measureRun(p.measure.values)
      } catch (err) {
        // Refused before extending anything: PCR 23 is someone else's state, leave it.
        if (err instanceof DigicapError && err.code === 'RUN_PCR_NOT_RESET') measured = false
        throw err
      }
    }
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
  let attestation: RunCleanupStatement | undefined
  if (p.measure && measured) {
    attestation = await cleanupStatement(cleanup, p.measure)
    try {
      await p.measure.agent.endRun(attestation)
    } catch (err) {
      failure ??= err
    }
  }
  try {
    await lifecycle?.emit('after-cleanup', {
      runId,
      report: cleanup,
      ...(attestation ? { attestation } : {}),
    })
  } catch (err) {
    failure ??= err
  }
  if (failure !== undefined) throw failure
  if (!result || !measurements) {
    throw new SandboxLifecycleError('Run produced no result')
  }
  return { runId, result, measurements, cleanup, ...(attestation ? { attestation } : {}) }
}

/** Checks, not assumes, what clean-up did: temp roots gone, key buffers all zeros. */
async function cleanupStatement(
  cleanup: CleanupReport,
  plan: RunMeasurementPlan,
): Promise<RunCleanupStatement> {
  let rootsGone = true
  for (const root of cleanup.tempRoots) {
    try {
      await access(root)
      rootsGone = false
    } catch {
      // gone, as it should be
    }
  }
  return {
    grantId: plan.values.grantId.slice(),
    workspaceRemoved: rootsGone && cleanup.failures.length === 0,
    keyBuffersWiped: plan.keyBuffers.every((b) => b.every((x) => x === 0)),
  }
}
