/**
 * What `pi-node serve` offers its operator besides the keyguard: `/metrics`, `/healthz` and the
 * status page on the ops port (when --ops-port is given), and systemd readiness.
 */

import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { writeJsonAtomic } from '@digicap/cli-kit'
import { OPS_FILE } from '../flags.ts'
import { cachedAnswer } from '../health/cached.ts'
import { publicOpsWarning, startOpsServer } from '../http/ops-server.ts'
import type { OpsLogger } from '../log/logger.ts'
import { createNodeMetrics } from '../metrics/node-metrics.ts'
import { observeKeyguardEvents, observeSealer } from '../metrics/observe.ts'
import { statusPageRoutes } from '../status/routes.ts'
import { createStatusToken } from '../status/token.ts'
import { notifyReady, notifyStopping } from '../systemd/notify.ts'
import { piNodeStatusSource, type StatusDaemon, type StatusOwner } from './pi-node-status.ts'
import { STATUS_TOKEN_FILE } from './status-link.ts'

/** How long one build of the health rows answers /healthz, ms (at most the health cache). */
const HEALTH_ROWS_MS = 1_000

export interface PiNodeOpsOptions {
  dataDir: string
  /** The pi-node's version, for `digicap_build_info`. */
  version: string
  port: number | undefined
  host: string | undefined
  allowPublic: boolean
  /** A sealer that is not hardware-backed counts as a healthy `tpm` (`--allow-software-sealer`). */
  allowSoftwareSealer?: boolean | undefined
  /** More Host header values the ops port answers (`--ops-allowed-host`). */
  allowedHosts?: readonly string[] | undefined
  /** How long a TPM probe's or the RPC's answer is reused by /healthz and the page. Default 10 s. */
  healthCacheMs?: number | undefined
  env: NodeJS.ProcessEnv
  logger: OpsLogger
}

export interface PiNodeOps {
  /** `http://127.0.0.1:<port>` when the ops port is on. */
  readonly url: string | undefined
  /** The status page's address (log in with the link `pi-node status` prints), when on. */
  readonly statusUrl: string | undefined
  /** Tells systemd the daemon serves (`Type=notify`); nothing without NOTIFY_SOCKET. */
  ready(status: string): Promise<void>
  stop(): Promise<void>
}

/** Starts the ops port (if asked) over the running daemon. */
export async function startPiNodeOps(
  pi: StatusOwner,
  daemon: StatusDaemon,
  o: PiNodeOpsOptions,
): Promise<PiNodeOps> {
  const notify = { env: o.env }
  const ready = async (status: string) => {
    await notifyReady(status, notify).catch((err: unknown) =>
      o.logger.error('cannot notify systemd', { err }),
    )
  }
  const stopping = async () => {
    await notifyStopping(notify).catch(() => false)
  }
  if (o.port === undefined) {
    return { url: undefined, statusUrl: undefined, ready, stop: stopping }
  }
  const source = piNodeStatusSource(pi, daemon, {
    title: `pi-node ${daemon.peerId}`,
    journalDir: join(o.dataDir, 'keyguard', 'journal'),
    ...(o.healthCacheMs === undefined ? {} : { cacheMs: o.healthCacheMs }),
    allowSoftwareSealer:
      o.allowSoftwareSealer === true || o.env.DIGICAP_ALLOW_SOFTWARE_SEALER === '1',
  })
  const metrics = createNodeMetrics(
    'pi-node',
    {
      peers: () => daemon.peers(),
      capsulesGuarded: async () => (await pi.keyStore.list()).length,
      grantWatcherLag: async () => {
        const { chain } = await daemon.keyguard.status()
        return chain.head !== null && chain.cursor ? chain.head - chain.cursor.number : undefined
      },
    },
    { version: o.version },
  )
  const unobserve = observeKeyguardEvents(metrics, daemon.keyguard.events)
  // After the status source: its TPM probe holds the sealer's own methods, not counted here.
  const unwrapSealer = observeSealer(metrics, pi.sealer)
  // A new token at each start (the rotation); one that cannot be written turns the status
  // page off with a warning, and the keyguard, /metrics and /healthz go on.
  const token = await createStatusToken(join(o.dataDir, STATUS_TOKEN_FILE)).catch(
    (err: unknown) => {
      o.logger.warn('status page off: cannot write its token', {
        err,
        file: join(o.dataDir, STATUS_TOKEN_FILE),
      })
      return undefined
    },
  )
  // One set of rows serves every check of a /healthz, and every /healthz for a second (one
  // build in flight): an unauthenticated flood costs the keyguard one status() per window.
  const healthRows = cachedAnswer(
    Math.min(HEALTH_ROWS_MS, o.healthCacheMs ?? HEALTH_ROWS_MS),
    async () => Object.fromEntries((await source.health()).map((r) => [r.name, r])),
  )
  const check = (name: string) => async () => {
    const row = (await healthRows())[name]
    return { ok: row?.ok === true, detail: { text: row?.text ?? 'missing' } }
  }
  const server = await startOpsServer({
    port: o.port,
    ...(o.host === undefined ? {} : { host: o.host }),
    allowPublic: o.allowPublic,
    ...(o.allowedHosts === undefined ? {} : { allowedHosts: o.allowedHosts }),
    metrics,
    health: { tpm: check('tpm'), chain: check('chain'), keyguard: check('keyguard') },
    routes:
      token === undefined
        ? []
        : [
            statusPageRoutes({
              token,
              snapshot: source.snapshot,
              subscribe: (onChange) => {
                const types = [
                  'grant-accepted',
                  'grant-refused',
                  'released',
                  'release-failed',
                  'fast-path-granted',
                  'fast-path-refused',
                  'served-inline',
                ]
                for (const t of types) daemon.keyguard.events.addEventListener(t, onChange)
                return () => {
                  for (const t of types) daemon.keyguard.events.removeEventListener(t, onChange)
                }
              },
            }),
          ],
  })
  const loud = publicOpsWarning(server, token !== undefined)
  if (loud) o.logger.warn(loud.message, loud.fields)
  const file = join(o.dataDir, OPS_FILE)
  await writeJsonAtomic(file, { pid: process.pid, url: server.url })
  o.logger.info('ops port listening', {
    metrics: `${server.url}/metrics`,
    healthz: `${server.url}/healthz`,
    status: token === undefined ? 'off' : `${server.url}/status`,
  })
  return {
    url: server.url,
    statusUrl: token === undefined ? undefined : `${server.url}/status`,
    ready,
    async stop() {
      await stopping()
      unobserve()
      unwrapSealer()
      await server.close()
      await rm(file, { force: true })
    },
  }
}
