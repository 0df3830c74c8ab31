/**
 * What an image capsule runs, read from its (committed) image config: the command, the
 * environment, the working directory and where the result is. Anything that asks for more than
 * an unprivileged offline process is refused here, before a container exists.
 */
import { OciFormatError, OciPrivilegeError } from '../errors.ts'
import type { ImageLayout } from '../layout/layout.ts'
import type { ImageManifest } from '../layout/types.ts'

/** Label naming the result: `stdout` (default) or `file:/digicap/output/<name>`. */
export const LABEL_RESULT = 'org.digicap.result'
/** Where the capsule's input (the payload's data) is mounted read-only. */
export const INPUT_PATH = '/digicap/input'
/** The only writable directory of the container. */
export const OUTPUT_DIR = '/digicap/output'
/** The user a container runs as when the image names none (nobody). */
export const DEFAULT_UID = 65534

export interface ImageRunConfig {
  args: string[]
  env: string[]
  cwd: string
  uid: number
  gid: number
  /** `stdout`, or a file name inside {@link OUTPUT_DIR}. */
  result: { kind: 'stdout' } | { kind: 'file'; name: string }
}

const MAX_ARGS = 256
const MAX_STRING = 4096
const FILE_NAME_RE = /^[A-Za-z0-9._-]{1,128}$/

const strings = (value: unknown, field: string): string[] => {
  if (value === undefined || value === null) return []
  if (
    !Array.isArray(value) ||
    value.length > MAX_ARGS ||
    value.some((v) => typeof v !== 'string' || v.length > MAX_STRING || v.includes('\0'))
  ) {
    throw new OciFormatError('Image config field is not a list of strings', { details: { field } })
  }
  return value as string[]
}

function user(value: unknown): { uid: number; gid: number } {
  if (value === undefined || value === null || value === '') {
    return { uid: DEFAULT_UID, gid: DEFAULT_UID }
  }
  const m = typeof value === 'string' ? /^(\d{1,9})(?::(\d{1,9}))?$/.exec(value) : null
  const uid = m ? Number(m[1]) : 0
  const gid = m?.[2] !== undefined ? Number(m[2]) : uid
  if (!m || uid === 0 || gid === 0) {
    throw new OciPrivilegeError('The image asks to run as root or as a named user', {
      details: { field: 'User', value: String(value).slice(0, 64) },
      hint: 'Leave User empty (the run uses 65534) or give a numeric non-zero uid[:gid].',
    })
  }
  return { uid, gid }
}

function result(label: string | undefined): ImageRunConfig['result'] {
  if (label === undefined || label === 'stdout') return { kind: 'stdout' }
  const prefix = `file:${OUTPUT_DIR}/`
  const name = label.startsWith(prefix) ? label.slice(prefix.length) : ''
  if (!FILE_NAME_RE.test(name) || name === '.' || name === '..') {
    throw new OciFormatError(
      `The ${LABEL_RESULT} label is neither stdout nor file:${OUTPUT_DIR}/<name>`,
      {
        details: { label: label.slice(0, 128) },
      },
    )
  }
  return { kind: 'file', name }
}

/**
 * Reads the run configuration from a layout's (decrypted) image config.
 * @throws {OciPrivilegeError} for a root or named `User`, `ExposedPorts`, `Volumes`;
 *   {@link OciFormatError} for a malformed config, no command, or a bad result label.
 */
export async function readRunConfig(
  layout: ImageLayout,
  manifest: ImageManifest,
): Promise<ImageRunConfig> {
  const json = (await layout.readJson(manifest.config)) as { config?: Record<string, unknown> }
  const c = (json && typeof json === 'object' ? json.config : undefined) ?? {}
  if (typeof c !== 'object' || c === null) throw new OciFormatError('Image config is malformed')
  for (const field of ['ExposedPorts', 'Volumes'] as const) {
    const v = c[field]
    if (v !== undefined && v !== null && Object.keys(v as object).length > 0) {
      throw new OciPrivilegeError(`The image asks for ${field}, which image capsules never get`, {
        details: { field },
        hint: 'Runs have no network and one writable directory, /digicap/output.',
      })
    }
  }
  const args = [...strings(c.Entrypoint, 'Entrypoint'), ...strings(c.Cmd, 'Cmd')]
  if (args.length === 0) throw new OciFormatError('The image config names no command')
  const env = strings(c.Env, 'Env')
  const cwd = c.WorkingDir === undefined || c.WorkingDir === '' ? '/' : c.WorkingDir
  if (typeof cwd !== 'string' || !cwd.startsWith('/') || cwd.length > MAX_STRING) {
    throw new OciFormatError('Image config WorkingDir is not an absolute path')
  }
  const labels = (c.Labels ?? {}) as Record<string, unknown>
  const label = labels[LABEL_RESULT]
  if (label !== undefined && typeof label !== 'string') {
    throw new OciFormatError(`The ${LABEL_RESULT} label is not a string`)
  }
  return { args, env, cwd, ...user(c.User), result: result(label) }
}
