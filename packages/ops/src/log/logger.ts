/**
 * The daemons' logger: leveled, structured, one line per event. JSON lines for machines
 * (systemd's journal, a pipe), `HH:MM:SS.mmm LEVEL message key=value` for a person at a
 * terminal. Field values pass through {@link redact} (secrets by name, bytes by type).
 */
import { type LogLevel, levelRank } from './levels.ts'
import { redact, redactText } from './redact.ts'

export type LogFields = Record<string, unknown>

/** Levelled logging; a superset of the keyguard's `Logger` (`info`, `warn`). */
export interface OpsLogger {
  readonly level: LogLevel
  debug(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
  /** A logger that adds `fields` to every line (e.g. `{ component: 'keyguard' }`). */
  child(fields: LogFields): OpsLogger
}

export type LogFormat = 'json' | 'pretty'

export interface LoggerOptions {
  /** Lowest level written. Default `info`. */
  level?: LogLevel
  /** Default `json`. */
  format?: LogFormat
  /** Where lines go. */
  stream: { write(line: string): unknown }
  /** Fields on every line. */
  fields?: LogFields
  /** Clock (tests). */
  now?: () => Date
}

const PRETTY_LEVEL: Record<string, string> = {
  debug: 'DEBUG',
  info: 'INFO ',
  warn: 'WARN ',
  error: 'ERROR',
}

/** C0 and C1 controls (ESC, CSI, BEL…): a terminal acts on them, so readable lines escape them. */
const CONTROL = /\p{Cc}/gu
const escapeControls = (s: string) =>
  s.replace(CONTROL, (c) =>
    c === '\n' ? '\\n' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )

function prettyValue(v: unknown): string {
  if (typeof v === 'string')
    return /[\s="]/.test(v) || v === '' ? escapeControls(JSON.stringify(v)) : escapeControls(v)
  return escapeControls(JSON.stringify(v))
}

function formatLine(
  format: LogFormat,
  time: Date,
  level: string,
  message: string,
  fields: Record<string, unknown>,
): string {
  if (format === 'json')
    return `${JSON.stringify({ time: time.toISOString(), level, message, ...fields })}\n`
  const clock = time.toISOString().slice(11, 23)
  const rest = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${escapeControls(k)}=${prettyValue(v)}`)
    .join('')
  // One line per event even when a message holds a newline.
  return `${clock} ${PRETTY_LEVEL[level]} ${escapeControls(message)}${rest}\n`
}

/**
 * Builds a logger.
 *
 * @example
 * ```ts
 * const log = createLogger({ level: 'debug', format: 'pretty', stream: process.stderr })
 * log.child({ component: 'keyguard' }).info('released', { grantId })
 * ```
 */
export function createLogger(options: LoggerOptions): OpsLogger {
  const level = options.level ?? 'info'
  const format = options.format ?? 'json'
  const now = options.now ?? (() => new Date())
  const base = options.fields ?? {}
  const min = levelRank(level)
  const write = (at: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields) => {
    if (levelRank(at) < min) return
    const safe = redact({ ...base, ...fields }) as Record<string, unknown>
    try {
      options.stream.write(formatLine(format, now(), at, redactText(String(message)), safe))
    } catch {
      // A closed stream must not take the daemon down with it.
    }
  }
  return {
    level,
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  }
}

/** The process side the daemon logs from. */
export interface ProcessOutput {
  env: NodeJS.ProcessEnv
  stdout: { write(line: string): unknown; isTTY?: boolean }
  stderr: { write(line: string): unknown; isTTY?: boolean }
}

/**
 * Under systemd (`JOURNAL_STREAM` or `INVOCATION_ID` set) the journal reads stdout: JSON lines
 * there. Elsewhere logs go to stderr (stdout carries the commands' results and `--json`
 * documents): readable lines on a terminal, JSON lines when stderr is a pipe or a file.
 */
export function processLogTarget(io: ProcessOutput): {
  stream: ProcessOutput['stdout']
  format: LogFormat
  systemd: boolean
} {
  const systemd = Boolean(io.env.JOURNAL_STREAM || io.env.INVOCATION_ID)
  if (systemd) return { stream: io.stdout, format: 'json', systemd }
  return { stream: io.stderr, format: io.stderr.isTTY === true ? 'pretty' : 'json', systemd }
}

/**
 * The logger of a daemon or command run by `io`, at `level` (default `info`), with
 * {@link processLogTarget}'s destination and format.
 */
export function processLogger(
  io: ProcessOutput,
  level: LogLevel = 'info',
  fields?: LogFields,
): OpsLogger {
  const { stream, format } = processLogTarget(io)
  return createLogger({ level, format, stream, ...(fields ? { fields } : {}) })
}
