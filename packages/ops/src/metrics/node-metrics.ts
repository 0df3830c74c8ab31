/**
 * The Prometheus metrics both daemons expose, on a registry of their own (never prom-client's
 * global one, so two nodes in one process — tests, the demo — do not mix). Names follow the
 * Prometheus conventions: `_total` counters, `_seconds` histograms, base units.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/** Values read when scraped (not pushed): the caller's view of its node. */
export interface MetricSources {
  /** Connected peers. */
  peers?: () => number
  /** Capsules whose keys this node guards. */
  capsulesGuarded?: () => number | Promise<number>
  /** Blocks between the chain head and the grant watcher's cursor. */
  grantWatcherLag?: () => number | undefined | Promise<number | undefined>
}

export interface NodeMetrics {
  readonly registry: Registry
  /** Releases served, by path (`chain`, `fast`). */
  readonly releasesServed: Counter<'path'>
  /** Releases refused, by path and reason code. */
  readonly releasesRefused: Counter<'path' | 'reason'>
  /** Releases that failed to go out (network, timeouts), by path. */
  readonly releasesFailed: Counter<'path'>
  /** From the fast-path request to the key leaving, seconds. */
  readonly fastPathLatency: Histogram
  /** One TPM (or sealer) operation, by `op`. */
  readonly tpmOpLatency: Histogram<'op'>
  /** Capsule runs, by outcome (`ok`, `failed`) and path. */
  readonly runsExecuted: Counter<'outcome' | 'path'>
  /** Sandbox failures, by kind (`SANDBOX_TIMEOUT`, `SANDBOX_MEMORY`, ...). */
  readonly sandboxFailures: Counter<'kind'>
  /** Results acknowledged by their receiver. */
  readonly resultsDelivered: Counter<'status'>
  /** Prometheus text exposition. */
  text(): Promise<string>
  /** The text's content type. */
  readonly contentType: string
}

/** Latency buckets, seconds: 1 ms to 10 s. */
const LATENCY = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * Builds the metrics of one node.
 *
 * @param app - `pi-node` or `executor-node`, the `app` label of `digicap_info`.
 * @example
 * ```ts
 * const metrics = createNodeMetrics('pi-node', { peers: () => node.libp2p.getConnections().length })
 * metrics.releasesServed.inc({ path: 'fast' })
 * ```
 */
export function createNodeMetrics(
  app: string,
  sources: MetricSources = {},
  options: { version?: string; processMetrics?: boolean } = {},
): NodeMetrics {
  const registry = new Registry()
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  new Gauge({
    name: 'digicap_info',
    help: 'The app and its version (always 1).',
    labelNames: ['app', 'version'],
    registers,
  }).set({ app, version: options.version ?? 'unknown' }, 1)
  // A gauge read when scraped; a source that answers undefined leaves the gauge unset.
  const polled = (
    name: string,
    help: string,
    read: (() => number | undefined | Promise<number | undefined>) | undefined,
  ): void => {
    if (!read) return
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const value = await read()
        if (value !== undefined) this.set(value)
      },
    })
  }
  polled('digicap_peers', 'Connected libp2p peers.', sources.peers)
  polled(
    'digicap_capsules_guarded',
    'Capsules whose data keys this keyguard holds.',
    sources.capsulesGuarded,
  )
  polled(
    'digicap_grant_watcher_lag_blocks',
    "Blocks between the chain head and the grant watcher's cursor.",
    sources.grantWatcherLag,
  )
  return {
    registry,
    releasesServed: new Counter({
      name: 'digicap_releases_served_total',
      help: 'Key releases served, by path.',
      labelNames: ['path'],
      registers,
    }),
    releasesRefused: new Counter({
      name: 'digicap_releases_refused_total',
      help: 'Key releases refused, by path and reason.',
      labelNames: ['path', 'reason'],
      registers,
    }),
    releasesFailed: new Counter({
      name: 'digicap_releases_failed_total',
      help: 'Key releases that could not be delivered, by path.',
      labelNames: ['path'],
      registers,
    }),
    fastPathLatency: new Histogram({
      name: 'digicap_fast_path_latency_seconds',
      help: 'Fast-path release latency, from the request to the key leaving.',
      buckets: LATENCY,
      registers,
    }),
    tpmOpLatency: new Histogram({
      name: 'digicap_tpm_op_seconds',
      help: 'TPM (sealer) operation latency, by operation.',
      labelNames: ['op'],
      buckets: LATENCY,
      registers,
    }),
    runsExecuted: new Counter({
      name: 'digicap_runs_executed_total',
      help: 'Capsule runs, by outcome and path.',
      labelNames: ['outcome', 'path'],
      registers,
    }),
    sandboxFailures: new Counter({
      name: 'digicap_sandbox_failures_total',
      help: 'Sandbox failures, by kind (error code).',
      labelNames: ['kind'],
      registers,
    }),
    resultsDelivered: new Counter({
      name: 'digicap_results_delivered_total',
      help: 'Result deliveries after a run, by status (delivered, stored, refused).',
      labelNames: ['status'],
      registers,
    }),
    text: () => registry.metrics(),
    contentType: registry.contentType,
  }
}
