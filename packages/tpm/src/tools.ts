/**
 * Runs tpm2-tools through execa (argument arrays, never a shell) and maps failures to typed
 * errors. Input goes through stdin and output comes back on stdout, so a secret never has to
 * touch a file.
 */
import { join } from 'node:path'
import type { DigicapError } from '@digicap/capsule-core'
import { TpmBusyError, TpmCommandError, TpmHandleError, TpmUnavailableError } from './errors.ts'
import { BUSY_CODES, baseResponseCode, busyError, TPM_RC } from './rc.ts'

export interface Tpm2ToolsOptions {
  /** TCTI string handed to the tools as `TPM2TOOLS_TCTI`. */
  tcti: string
  /** Directory holding the tpm2-tools binaries; `undefined` searches `PATH`. */
  toolsPath?: string | undefined
  /** Per-command timeout. */
  timeoutMs: number
}

/**
 * A caller's own mapping of a TPM response code (its base, number bits stripped), tried
 * after the transport and busy checks and before the generic ones; `undefined` falls through.
 */
export type ToolFailureRefiner = (
  base: number,
  details: Record<string, unknown>,
) => DigicapError | undefined

export interface Tpm2RunOptions {
  /** Bytes written to the tool's stdin. */
  input?: Uint8Array
  /** Command-specific error mapping (e.g. a failed decryption is the caller's own error). */
  refine?: ToolFailureRefiner
}

export interface Tpm2Result {
  stdout: Uint8Array
}

const RC = TPM_RC

/** TSS layer of a response code (bits 16–23): 0 = TPM, 7 = ESAPI, 10 = TCTI. */
const TCTI_LAYER = 0x0a

/** The TPM response code a tool reported, taken from its last `ERROR: Fn(0x…)` line. */
export function parseResponseCode(stderr: string): number | undefined {
  const matches = [...stderr.matchAll(/ERROR: \w+\((0x[0-9a-fA-F]+)\)/g)]
  const last = matches.at(-1)
  return last?.[1] === undefined ? undefined : Number.parseInt(last[1], 16)
}

/** Maps a failed tool run to a typed error. Exported for tests. */
export function mapToolFailure(
  tool: string,
  failure: {
    exitCode?: number | undefined
    stderr: string
    timedOut: boolean
    spawnCode?: string | undefined
  },
  refine?: ToolFailureRefiner,
): DigicapError {
  const { exitCode, stderr, timedOut, spawnCode } = failure
  const rc = parseResponseCode(stderr)
  const details: Record<string, unknown> = { tool, exitCode }
  if (rc !== undefined) details.rc = `0x${rc.toString(16)}`

  if (spawnCode === 'ENOENT' || spawnCode === 'EACCES') {
    return new TpmUnavailableError('tpm2-tools are not installed or not executable', {
      details: { tool, reason: 'tools-missing', spawnCode },
      hint: 'Install tpm2-tools (Debian: apt install tpm2-tools) or set toolsPath.',
    })
  }
  if (timedOut) {
    return new TpmUnavailableError('The TPM did not answer in time', {
      details: { tool, reason: 'timeout' },
      hint: 'Check that the TPM (or swtpm) is running and not wedged.',
    })
  }
  if (/Device or resource busy|EBUSY/.test(stderr)) {
    return new TpmBusyError('The TPM device is in use by another process', {
      details: { ...details, reason: 'device-busy' },
      hint: 'Use the resource manager device (device:/dev/tpmrm0) or stop the other user.',
    })
  }
  if (
    /Could not load tcti|Failed to instantiate TCTI|Failed to connect|Cannot connect|Failed to open specified TCTI device/i.test(
      stderr,
    ) ||
    (rc !== undefined && (rc >>> 16) & 0xff) === TCTI_LAYER
  ) {
    return new TpmUnavailableError('The TPM is not reachable through the configured TCTI', {
      details: { ...details, reason: 'tcti' },
      hint: 'Check the TCTI string and that the TPM device or swtpm is up.',
    })
  }
  if (rc !== undefined && rc >>> 16 === 0) {
    const base = baseResponseCode(rc)
    if (BUSY_CODES.has(base)) return busyError(base, details)
    const refined = refine?.(base, details)
    if (refined !== undefined) return refined
    if (base === RC.HANDLE || base === RC.REFERENCE_H0) {
      return new TpmHandleError('No usable key at the persistent handle', {
        details,
        hint: 'Provision the key or fix the configured handle.',
      })
    }
    if (base === RC.NV_DEFINED) {
      return new TpmHandleError('The persistent handle is already in use', {
        details,
        hint: 'Pick a free persistent handle, or evict the object that holds it.',
      })
    }
  }
  return new TpmCommandError(`${tool} failed`, {
    details: { ...details, stderr: lastErrorLine(stderr) },
  })
}

function lastErrorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.startsWith('ERROR'))
  return (lines.at(-1) ?? stderr.split('\n')[0] ?? '').slice(0, 200)
}

/** Runs one tpm2-tools command. Resolves with stdout bytes; rejects with a typed error. */
export async function runTpm2Tool(
  options: Tpm2ToolsOptions,
  tool: string,
  args: readonly string[],
  run: Tpm2RunOptions = {},
): Promise<Tpm2Result> {
  const file = options.toolsPath === undefined ? tool : join(options.toolsPath, tool)
  // execa (111 modules) loads on the first tool run, not with the package: `pi-node status`
  // and every other importer that never runs a tool start without it.
  const { execa } = await import('execa')
  const result = await execa(file, args, {
    env: { TPM2TOOLS_TCTI: options.tcti },
    extendEnv: true,
    encoding: 'buffer',
    stripFinalNewline: false,
    reject: false,
    timeout: options.timeoutMs,
    ...(run.input === undefined ? { stdin: 'ignore' as const } : { input: run.input }),
  })
  if (!result.failed) return { stdout: result.stdout }
  // Never keep partial output (a decrypted secret) of a failed run around.
  result.stdout.fill(0)
  const stderr = Buffer.from(result.stderr).toString('utf8')
  const spawnCode = (result.cause as NodeJS.ErrnoException | undefined)?.code
  throw mapToolFailure(
    tool,
    {
      exitCode: result.exitCode,
      stderr,
      timedOut: result.timedOut,
      spawnCode: typeof spawnCode === 'string' ? spawnCode : undefined,
    },
    run.refine,
  )
}
