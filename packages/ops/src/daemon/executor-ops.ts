/**
 * What `executor-node serve` offers its operator: `/metrics` and `/healthz` on the ops port
 * (when --ops-port is given) and systemd readiness. Runs are counted by wrapping the
 * executor's `runCapsule` (auto-runs go through it).
 */

import { cachedAnswer } from '../health/cached.ts'
import { publicOpsWarning, startOpsServer } from '../http/ops-server.ts'
import type { OpsLogger } from '../log/logger.ts'
import { createNodeMetrics } from '../metrics/node-metrics.ts'
import { observeRuns } from '../metrics/observe.ts'
import { notifyReady, notifyStopping } from '../systemd/notify.ts'

export interface ExecutorOpsOptions {
  /** The executor-node's version, for `digicap_build_info`. */
  version: string
  port: number | undefined
  host: string | undefined
  allowPublic: boolean
  /** More Host header values the ops port answers (`--ops-allowed-host`). */
  allowedHosts?: readonly string[] | undefined
  /** How long /healthz reuses the chain head (success or failure). Default 10 s. */
  healthCacheMs?: number | undefined
  env: NodeJS.ProcessEnv
  logger: OpsLogger
  /** The chain check of /healthz: resolves the head block. */
  head(): Promise<number>
}

/**
 * Starts the ops port (if asked); returns `observe(executor)`, which wraps an executor so its
 * runs are counted, `ready()` for systemd, and `stop()`.
 */
export async function startExecutorOps(
  peers: () => number,
  pendingDeliveries: () => number,
  o: ExecutorOpsOptions,
) {
  const notify = { env: o.env }
  const metrics = createNodeMetrics('executor-node', { peers }, { version: o.version })
  const head = cachedAnswer(o.healthCacheMs ?? 10_000, o.head)
  const server =
    o.port === undefined
      ? undefined
      : await startOpsServer({
          port: o.port,
          ...(o.host === undefined ? {} : { host: o.host }),
          allowPublic: o.allowPublic,
          ...(o.allowedHosts === undefined ? {} : { allowedHosts: o.allowedHosts }),
          metrics,
          health: {
            chain: async () => ({ ok: true, detail: { head: await head() } }),
            peers: () => ({ ok: true, detail: { connected: peers() } }),
            deliveries: () => ({ ok: true, detail: { pending: pendingDeliveries() } }),
          },
        })
  const loud = server && publicOpsWarning(server, false)
  if (loud) o.logger.warn(loud.message, loud.fields)
  if (server)
    o.logger.info('ops port listening', {
      metrics: `${server.url}/metrics`,
      healthz: `${server.url}/healthz`,
    })
  return {
    url: server?.url,
    observe: <E extends Parameters<typeof observeRuns>[1]>(executor: E): E =>
      observeRuns(metrics, executor),
    async ready(status: string) {
      await notifyReady(status, notify).catch((err: unknown) =>
        o.logger.error('cannot notify systemd', { err }),
      )
    },
    async stop() {
      await notifyStopping(notify).catch(() => false)
      await server?.close()
    },
  }
}
