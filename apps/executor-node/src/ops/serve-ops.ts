/**
 * What `executor-node serve` offers its operator: `/metrics` and `/healthz` on the ops port
 * (when --ops-port is given) and systemd readiness. Runs are counted by wrapping the
 * executor's `runCapsule` (auto-runs go through it).
 */
import type { OpsLogger } from '@digicap/ops/logger'

export interface ExecutorServeOptions {
  port: number | undefined
  host: string | undefined
  allowPublic: boolean
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
  o: ExecutorServeOptions,
) {
  const ops = await import('@digicap/ops')
  const notify = { env: o.env }
  const metrics = ops.createNodeMetrics(
    'executor-node',
    { peers },
    { version: ops.packageVersion(import.meta.url, '@digicap/executor-node') },
  )
  const server =
    o.port === undefined
      ? undefined
      : await ops.startOpsServer({
          port: o.port,
          ...(o.host === undefined ? {} : { host: o.host }),
          allowPublic: o.allowPublic,
          metrics,
          health: {
            chain: async () => ({ ok: true, detail: { head: await o.head() } }),
            peers: () => ({ ok: true, detail: { connected: peers() } }),
            deliveries: () => ({ ok: true, detail: { pending: pendingDeliveries() } }),
          },
        })
  if (server)
    o.logger.info('ops port listening', {
      metrics: `${server.url}/metrics`,
      healthz: `${server.url}/healthz`,
    })
  return {
    url: server?.url,
    observe: <E extends Parameters<typeof ops.observeRuns>[1]>(executor: E): E =>
      ops.observeRuns(metrics, executor),
    async ready(status: string) {
      await ops
        .notifyReady(status, notify)
        .catch((err: unknown) => o.logger.error('cannot notify systemd', { err }))
    },
    async stop() {
      await ops.notifyStopping(notify).catch(() => false)
      await server?.close()
    },
  }
}
