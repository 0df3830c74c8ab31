import type { RunMeasurements } from '@digicap/capsule-core'
import { SandboxLifecycleError } from '../errors.ts'
import type { RuntimeKind, SandboxStats } from '../sandbox/types.ts'
import type { RunCleanupStatement, RunMeasurementValues } from './attestation.ts'
import type { CleanupReport } from './workspace.ts'

/** Events of one run, in order: before-load → after-load → after-run → after-cleanup. */
export interface RunLifecycleEvents {
  /** The code and data are about to be measured and handed to a sandbox. */
  'before-load': {
    readonly runId: string
    readonly kind: RuntimeKind
    readonly entry: string
    readonly runtimeId: string
    readonly codeBytes: number
    readonly inputBytes: number
    /** A measured run: the values PCR 23 is about to be extended with (it is still at reset). */
    readonly attestation?: RunMeasurementValues | undefined
  }
  /**
   * Measured; the sandbox starts next. `measurements.run` is the value each result delivery
   * signs; PCR 23 holds the `before-load` attestation values, not it (ADR 0021).
   */
  'after-load': { readonly runId: string; readonly measurements: RunMeasurements }
  /** The program finished (`ok`) or was stopped (`errorCode`). */
  'after-run': {
    readonly runId: string
    readonly ok: boolean
    readonly errorCode?: string | undefined
    readonly stats?: SandboxStats | undefined
    readonly outputBytes?: number | undefined
  }
  /** Everything the run left was removed; attestation resets PCR 23. */
  'after-cleanup': {
    readonly runId: string
    readonly report: CleanupReport
    /** A measured run: the statement the agent keeps; PCR 23 is reset. */
    readonly attestation?: RunCleanupStatement | undefined
  }
}

export type RunLifecycleEvent = keyof RunLifecycleEvents
export type RunLifecycleListener<E extends RunLifecycleEvent> = (
  event: RunLifecycleEvents[E],
) => void | Promise<void>

/** A small typed event emitter; listeners run in order and are awaited. */
export interface RunLifecycle {
  /** Subscribe; returns the function that unsubscribes. */
  on<E extends RunLifecycleEvent>(event: E, listener: RunLifecycleListener<E>): () => void
  /**
   * Deliver an event to every listener, one after the other.
   * @throws SandboxLifecycleError if a listener throws (the run must not go on unmeasured).
   */
  emit<E extends RunLifecycleEvent>(event: E, data: RunLifecycleEvents[E]): Promise<void>
}

/**
 * @example
 * ```ts
 * const lifecycle = runLifecycle()
 * lifecycle.on('after-load', async ({ measurements }) => agent.extendRunPcr(measurements.run))
 * lifecycle.on('after-cleanup', ({ report }) => log.info(report))
 * ```
 */
export function runLifecycle(): RunLifecycle {
  const listeners = new Map<RunLifecycleEvent, Array<RunLifecycleListener<RunLifecycleEvent>>>()
  return {
    on(event, listener) {
      const list = listeners.get(event) ?? []
      list.push(listener as RunLifecycleListener<RunLifecycleEvent>)
      listeners.set(event, list)
      return () => {
        const i = list.indexOf(listener as RunLifecycleListener<RunLifecycleEvent>)
        if (i >= 0) list.splice(i, 1)
      }
    },
    async emit(event, data) {
      for (const l of [...(listeners.get(event) ?? [])]) {
        try {
          await l(data as RunLifecycleEvents[RunLifecycleEvent])
        } catch (err) {
          throw new SandboxLifecycleError('A lifecycle listener failed', {
            details: { event },
            cause: err,
          })
        }
      }
    },
  }
}
