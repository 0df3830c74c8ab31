/**
 * Measured runs take turns on their TPM: there is one PCR 23, so a run holds it from before
 * its access request (a keyguard's before-quote must see PCR 23 at reset) until PCR 23 is
 * reset after its clean-up. Waiting runs queue in arrival order, at most `maxWaiting` of them.
 */
import { RunPcrNotResetError, RunQueueFullError, SandboxAbortedError } from '../errors.ts'
import { isResetValue, type RunAttestationAgent } from './attestation.ts'

/** Default bound on runs waiting for the TPM. */
export const DEFAULT_MAX_WAITING_RUNS = 8

/** A run's turn on the TPM; `release()` hands it to the next waiting run (idempotent). */
export interface RunTurn {
  release(): void
}

export interface RunTurns {
  /**
   * Waits for this run's turn, then checks PCR 23 is at its reset value.
   *
   * @throws {RunQueueFullError} `maxWaiting` runs already wait.
   * @throws {RunPcrNotResetError} PCR 23 is not at its reset value (the turn is released).
   * @throws {SandboxAbortedError} `signal` aborted while waiting.
   */
  take(signal?: AbortSignal): Promise<RunTurn>
  /** Runs waiting now (not counting the one that holds the turn). */
  waiting(): number
}

export function createRunTurns(
  agent: RunAttestationAgent,
  init: { maxWaiting?: number | undefined } = {},
): RunTurns {
  const maxWaiting = init.maxWaiting ?? DEFAULT_MAX_WAITING_RUNS
  let held = false
  const queue: Array<() => void> = []

  function next(): void {
    const wake = queue.shift()
    if (wake) wake()
    else held = false
  }

  function turn(): RunTurn {
    let done = false
    return {
      release() {
        if (done) return
        done = true
        next()
      },
    }
  }

  async function wait(signal?: AbortSignal): Promise<void> {
    if (!held) {
      held = true
      return
    }
    if (queue.length >= maxWaiting) {
      throw new RunQueueFullError('Too many runs wait for the TPM', {
        details: { waiting: queue.length, maxWaiting },
      })
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      const onAbort = () => {
        const i = queue.indexOf(wake)
        if (i >= 0) queue.splice(i, 1)
        reject(new SandboxAbortedError('The run was aborted while waiting for the TPM'))
      }
      if (signal?.aborted) return onAbort()
      signal?.addEventListener('abort', onAbort, { once: true })
      queue.push(wake)
    })
  }

  return {
    waiting: () => queue.length,
    async take(signal) {
      await wait(signal)
      const t = turn()
      try {
        const pcr = await agent.readRunPcr()
        if (!isResetValue(pcr)) {
          throw new RunPcrNotResetError('PCR 23 is not at its reset value: a run did not finish', {
            details: { pcr: 23 },
          })
        }
      } catch (err) {
        t.release()
        throw err
      }
      return t
    },
  }
}
