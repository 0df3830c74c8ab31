/** The typed errors of `@digicap/ops`. */
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core/light'

/**
 * The ops HTTP server was asked to listen on a non-loopback interface without
 * `allowPublic`, or could not listen. Code `OPS_LISTEN`.
 */
export class OpsListenError extends DigicapError {
  override name = 'OpsListenError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('OPS_LISTEN', shortMessage, options)
  }
}

/** A systemd notification could not be sent. Code `SD_NOTIFY`. */
export class SdNotifyError extends DigicapError {
  override name = 'SdNotifyError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('SD_NOTIFY', shortMessage, options)
  }
}

/**
 * The status page's token file cannot be used: missing, not a regular file, readable by others,
 * not owned by the data folder's owner, or not a token. Code `STATUS_TOKEN`.
 */
export class StatusTokenError extends DigicapError {
  override name = 'StatusTokenError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('STATUS_TOKEN', shortMessage, options)
  }
}

/** The TPM (sealer) health probe got no answer in time, or a wrong one. Code `HEALTH_PROBE`. */
export class HealthProbeError extends DigicapError {
  override name = 'HealthProbeError'
  constructor(shortMessage: string, reason: 'timeout' | 'mismatch') {
    super('HEALTH_PROBE', shortMessage, { details: { reason } })
  }
}
