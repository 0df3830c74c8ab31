import type { DigicapError } from '@digicap/capsule-core'
import {
  SandboxCrashError,
  SandboxMemoryError,
  SandboxOutputLimitError,
  SandboxTimeoutError,
  sanitizeProgramText,
} from '../../errors.ts'
import type { WorkerFailure } from './protocol.ts'

/** Turn a failure a worker reported into the typed error the host throws. */
export function failureToError(f: WorkerFailure, extra: Record<string, unknown>): DigicapError {
  const details = { ...extra, ...f.details }
  switch (f.code) {
    case 'SANDBOX_TIMEOUT':
      return new SandboxTimeoutError(f.message, { details })
    case 'SANDBOX_MEMORY':
      return new SandboxMemoryError(f.message, { details })
    case 'SANDBOX_OUTPUT_LIMIT':
      return new SandboxOutputLimitError(f.message, { details })
    default:
      return new SandboxCrashError(f.message, {
        details: {
          ...details,
          ...(f.programMessage === undefined
            ? {}
            : { programMessage: sanitizeProgramText(f.programMessage) }),
        },
      })
  }
}
