/**
 * Runs tpm2-tools through execa (argument arrays, never a shell) and maps failures to typed
 * errors. Input goes through stdin and output comes back on stdout, so a plain data key
 * never touches a file.
 */
import { join } from 'node:path'
import type { DigicapError } from '@digicap/capsule-core'
import { execa } from 'execa'
import {
  TpmBusyError,
  TpmCommandError,
  TpmHandleError,
  TpmUnavailableError,
  UnwrapError,
} from '../errors.ts'
import { BUSY_CODES, baseResponseCode, TPM_RC } from './rc.ts'

export interface Tpm2ToolsOptions {
  /** TCTI string handed to the tools as `TPM2TOOLS_TCTI`. */
  tcti: string
  /** Directory holding the tpm2-tools binaries; `undefined` searches `PATH`. */
  toolsPath?: string | undefined
  /** Per-command timeout. */
  timeoutMs: number
}

export interface Tpm2RunOptions {
  /** Bytes written to the tool's stdin. */
  input?: Uint8Array
  /** What the command was doing, to pick the error for a failed decryption. */
  op: 'unwrap' | 'provision' | 'read' | 'flush' | 'probe'
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
  op: Tpm2RunOptions['op'],
  failure: {
    exitCode?: number | undefined
    stderr: string
    timedOut: boolean
    spawnCode?: string | undefined
  },
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
    if (BUSY_CODES.has(base)) {
      return new TpmBusyError('The TPM is busy or temporarily refusing commands', {
        details: { ...details, reason: base === RC.LOCKOUT ? 'lockout' : 'busy' },
        hint:
          base === RC.LOCKOUT
            ? 'The TPM is in dictionary-attack lockout; wait for the lockout to expire.'
            : 'Retry shortly; if it persists, flush transient objects (tpm2_flushcontext -t).',
      })
    }
    if (base === RC.HANDLE || base === RC.REFERENCE_H0) {
      return new TpmHandleError('No usable key at the persistent handle', {
        details,
        hint: 'Provision the key (createIfMissing) or fix the configured handle.',
      })
    }
    if (op === 'provision' && base === RC.NV_DEFINED) {
      return new TpmHandleError('The persistent handle is already in use', {
        details,
        hint: 'Pick a free persistent handle, or evict the object that holds it.',
      })
    }
    if (
      op === 'unwrap' &&
      (base === RC.VALUE ||
        base === RC.SIZE ||
        base === RC.FAILURE ||
        base === RC.KEY ||
        base === RC.SCHEME)
    ) {
      return new UnwrapError('The TPM could not decrypt the wrapped key', {
        details,
        hint: 'The ciphertext was not wrapped to this TPM key, or it was altered.',
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
  run: Tpm2RunOptions,
): Promise<Tpm2Result> {
  const file = options.toolsPath === undefined ? tool : join(options.toolsPath, tool)
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
  // Never keep partial plaintext from a failed decryption around.
  result.stdout.fill(0)
  const stderr = Buffer.from(result.stderr).toString('utf8')
  const spawnCode = (result.cause as NodeJS.ErrnoException | undefined)?.code
  throw mapToolFailure(tool, run.op, {
    exitCode: result.exitCode,
    stderr,
    timedOut: result.timedOut,
    spawnCode: typeof spawnCode === 'string' ? spawnCode : undefined,
  })
}
