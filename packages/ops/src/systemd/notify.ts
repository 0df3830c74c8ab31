/**
 * systemd readiness (`Type=notify`): tells the service manager the daemon serves, so
 * `systemctl start` returns only then. The protocol is one datagram on the unix socket named by
 * `NOTIFY_SOCKET`; Node has no unix datagram sockets, so the message goes through systemd's own
 * `systemd-notify` (present wherever systemd is). It runs as a child process, so the unit sets
 * `NotifyAccess=all`; since systemd 246 `systemd-notify` waits (a barrier) until the manager
 * has read the message, so the child exiting early cannot lose it.
 */
import { execFile } from 'node:child_process'
import { SdNotifyError } from '../errors.ts'

export interface SdNotifyOptions {
  env: NodeJS.ProcessEnv
  /** The binary (tests). Default `systemd-notify` from PATH. */
  binary?: string
  /** Default 10 000 ms. */
  timeoutMs?: number
}

/** Whether the process was started by systemd with `Type=notify`. */
export const notifyExpected = (env: NodeJS.ProcessEnv): boolean => Boolean(env.NOTIFY_SOCKET)

/**
 * Sends `fields` (e.g. `{ READY: '1', STATUS: 'serving' }`) to `NOTIFY_SOCKET`. Does nothing
 * (returns false) when there is no socket.
 *
 * @throws {SdNotifyError} when `systemd-notify` is missing or fails.
 */
export async function sdNotify(
  fields: Record<string, string>,
  options: SdNotifyOptions,
): Promise<boolean> {
  if (!notifyExpected(options.env)) return false
  const args = Object.entries(fields).map(([k, v]) => {
    if (!/^[A-Z_]+$/.test(k) || /\n/.test(v))
      throw new SdNotifyError('Bad notification field', { details: { field: k } })
    return `${k}=${v}`
  })
  const binary = options.binary ?? 'systemd-notify'
  await new Promise<void>((resolve, reject) => {
    execFile(
      binary,
      args,
      { env: options.env, timeout: options.timeoutMs ?? 10_000 },
      (err, _stdout, stderr) => {
        if (!err) return resolve()
        const code = (err as NodeJS.ErrnoException).code
        reject(
          new SdNotifyError('Cannot notify systemd', {
            cause: err,
            details: { binary, code, stderr: String(stderr).trim().slice(0, 200) },
            hint:
              code === 'ENOENT'
                ? 'Install systemd (systemd-notify), or run the unit with Type=simple.'
                : 'Check NotifyAccess=all in the unit.',
          }),
        )
      },
    )
  })
  return true
}

/** `READY=1` with a status line. */
export const notifyReady = (status: string, options: SdNotifyOptions) =>
  sdNotify({ READY: '1', STATUS: status }, options)

/** `STOPPING=1`. */
export const notifyStopping = (options: SdNotifyOptions) => sdNotify({ STOPPING: '1' }, options)
