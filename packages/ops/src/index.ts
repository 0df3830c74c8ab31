/**
 * @packageDocumentation
 *
 * `@digicap/ops` — what an operator of a Digicap node sees: the leveled structured logger
 * (also alone as `@digicap/ops/logger`), Prometheus metrics and `/healthz` on a local HTTP
 * port, the pi-node status page, and systemd readiness (`Type=notify`).
 *
 * @example
 * ```ts
 * import { createNodeMetrics, startOpsServer } from '@digicap/ops'
 *
 * const metrics = createNodeMetrics('pi-node', { peers: () => 3 })
 * const ops = await startOpsServer({ port: 0, metrics, health: { up: () => ({ ok: true }) } })
 * console.log(`${ops.url}/metrics`)
 * ```
 */

export {
  type ExecutorOpsOptions,
  startExecutorOps,
} from './daemon/executor-ops.ts'
export { type JournalRow, readJournal } from './daemon/journal.ts'
export { type PiNodeOps, type PiNodeOpsOptions, startPiNodeOps } from './daemon/pi-node-ops.ts'
export {
  piNodeStatusSource,
  type StatusDaemon,
  type StatusOwner,
  type StatusSourceOptions,
} from './daemon/pi-node-status.ts'
export {
  STATUS_TOKEN_FILE,
  type StatusPageLink,
  statusLoginCode,
  statusPageLine,
  statusPageLink,
} from './daemon/status-link.ts'
export { HealthProbeError, OpsListenError, SdNotifyError, StatusTokenError } from './errors.ts'
export { cachedAnswer } from './health/cached.ts'
export { type ProbedSealer, type SealerProbeAnswer, sealerProbe } from './health/sealer-probe.ts'
export { isLoopbackHost } from './http/loopback.ts'
export {
  allowedHostHeaders,
  type HealthCheck,
  type HealthChecks,
  healthReport,
  type OpsServer,
  type OpsServerOptions,
  publicOpsWarning,
  type RouteHandler,
  startOpsServer,
} from './http/ops-server.ts'
export * from './logger.ts'
export { createNodeMetrics, type MetricSources, type NodeMetrics } from './metrics/node-metrics.ts'
export { observeKeyguardEvents, observeRuns, observeSealer } from './metrics/observe.ts'
export {
  DEV_CHAIN_IDS,
  type RpcProviderWarning,
  rpcProvider,
  rpcProviderWarnings,
} from './rpc-providers.ts'
export { escapeHtml, html, Raw } from './status/escape.ts'
export { CLIENT_SCRIPT, renderMain, renderPage } from './status/render.ts'
export { type StatusPageOptions, statusPageRoutes } from './status/routes.ts'
export type {
  CapsuleRow,
  HealthRow,
  HistoryRow,
  PendingRow,
  StatusSnapshot,
} from './status/snapshot.ts'
export { createStatusToken, readStatusToken, tokenMatches } from './status/token.ts'
export {
  notifyExpected,
  notifyReady,
  notifyStopping,
  type SdNotifyOptions,
  sdNotify,
} from './systemd/notify.ts'
export { packageVersion } from './version.ts'
