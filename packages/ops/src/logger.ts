/**
 * `@digicap/ops/logger`: the logger alone (no metrics, no HTTP), for the apps' light paths.
 */
export { isLogLevel, LOG_LEVELS, type LogLevel, levelRank } from './log/levels.ts'
export {
  createLogger,
  type LogFields,
  type LogFormat,
  type LoggerOptions,
  type OpsLogger,
  type ProcessOutput,
  processLogger,
  processLogTarget,
} from './log/logger.ts'
export { isSecretField, REDACTED, redact, redactText, SECRET_FIELD } from './log/redact.ts'
