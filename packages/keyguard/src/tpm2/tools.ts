/**
 * tpm2-tools for the sealer: `@digicap/tpm`'s runner, with a failed decryption while
 * unwrapping reported as the keyguard's `UNWRAP`.
 */
import type { DigicapError } from '@digicap/capsule-core'
import {
  mapToolFailure as mapFailure,
  runTpm2Tool as run,
  type ToolFailureRefiner,
  TPM_RC,
  type Tpm2Result,
  type Tpm2ToolsOptions,
} from '@digicap/tpm'
import { UnwrapError } from '../errors.ts'

export type { Tpm2ToolsOptions } from '@digicap/tpm'

export interface Tpm2RunOptions {
  /** Bytes written to the tool's stdin. */
  input?: Uint8Array
  /** What the command was doing, to pick the error for a failed decryption. */
  op: 'unwrap' | 'provision' | 'read' | 'flush' | 'probe'
}

const DECRYPT_FAILURES: ReadonlySet<number> = new Set([
  TPM_RC.VALUE,
  TPM_RC.SIZE,
  TPM_RC.FAILURE,
  TPM_RC.KEY,
  TPM_RC.SCHEME,
])

function refinerFor(op: Tpm2RunOptions['op']): ToolFailureRefiner | undefined {
  if (op !== 'unwrap') return undefined
  return (base, details) =>
    DECRYPT_FAILURES.has(base)
      ? new UnwrapError('The TPM could not decrypt the wrapped key', {
          details,
          hint: 'The ciphertext was not wrapped to this TPM key, or it was altered.',
        })
      : undefined
}

/** Maps a failed tool run to a typed error. Exported for tests. */
export function mapToolFailure(
  tool: string,
  op: Tpm2RunOptions['op'],
  failure: Parameters<typeof mapFailure>[1],
): DigicapError {
  return mapFailure(tool, failure, refinerFor(op))
}

/** Runs one tpm2-tools command. Resolves with stdout bytes; rejects with a typed error. */
export function runTpm2Tool(
  options: Tpm2ToolsOptions,
  tool: string,
  args: readonly string[],
  runOptions: Tpm2RunOptions,
): Promise<Tpm2Result> {
  const refine = refinerFor(runOptions.op)
  return run(options, tool, args, {
    ...(runOptions.input === undefined ? {} : { input: runOptions.input }),
    ...(refine === undefined ? {} : { refine }),
  })
}
