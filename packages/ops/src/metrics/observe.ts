/**
 * Feeds {@link NodeMetrics} from what the daemons already report: the keyguard's events, the
 * executor's run results and errors, the sealer's calls. Each returns a way to stop.
 */
import type { NodeMetrics } from './node-metrics.ts'

type Detail = Record<string, unknown> & { type: string }

/**
 * Counts the keyguard's release events (`@digicap/keyguard`'s `KeyguardEvent`s on
 * `keyguard.events`): served and refused by path, fast-path latency, failed pushes.
 */
export function observeKeyguardEvents(metrics: NodeMetrics, events: EventTarget): () => void {
  const on: Record<string, (d: Detail) => void> = {
    released: () => metrics.releasesServed.inc({ path: 'chain' }),
    'release-failed': () => metrics.releasesFailed.inc({ path: 'chain' }),
    'grant-refused': (d) =>
      metrics.releasesRefused.inc({ path: 'chain', reason: String(d.reason ?? 'unknown') }),
    'fast-path-granted': (d) => {
      metrics.releasesServed.inc({ path: 'fast' })
      if (typeof d.ms === 'number') metrics.fastPathLatency.observe(d.ms / 1000)
    },
    'fast-path-refused': (d) =>
      metrics.releasesRefused.inc({ path: 'fast', reason: String(d.reasonCode ?? 'unknown') }),
  }
  const listeners = Object.entries(on).map(([type, count]) => {
    const listener = (e: Event) => count((e as CustomEvent<Detail>).detail)
    events.addEventListener(type, listener)
    return [type, listener] as const
  })
  return () => {
    for (const [type, listener] of listeners) events.removeEventListener(type, listener)
  }
}

/** The parts of a run result the counters read. */
interface RunOutcome {
  readonly path?: string
  readonly deliveries?: readonly { readonly status: string }[]
}

/**
 * Wraps `runCapsule` of an executor: counts runs by outcome and path, sandbox failures by
 * their error code (`SANDBOX_*`), and result deliveries by status. Returns an object whose
 * prototype is `executor` (getters such as `started` keep working).
 */
export function observeRuns<
  E extends { runCapsule(cid: string, options?: never): Promise<RunOutcome> },
>(metrics: NodeMetrics, executor: E): E {
  const wrapped = Object.create(executor) as E
  const run = executor.runCapsule.bind(executor) as (...a: unknown[]) => Promise<RunOutcome>
  ;(wrapped as { runCapsule: unknown }).runCapsule = async (...args: unknown[]) => {
    try {
      const result = await run(...args)
      metrics.runsExecuted.inc({ outcome: 'ok', path: result.path ?? 'unknown' })
      for (const d of result.deliveries ?? []) metrics.resultsDelivered.inc({ status: d.status })
      return result
    } catch (err) {
      const code = String((err as { code?: unknown })?.code ?? 'INTERNAL')
      metrics.runsExecuted.inc({ outcome: 'failed', path: 'unknown' })
      if (code.startsWith('SANDBOX_')) metrics.sandboxFailures.inc({ kind: code })
      throw err
    }
  }
  return wrapped
}

/**
 * Times a sealer's calls (`wrap`, `unwrap`, `publicKey`) into `digicap_tpm_op_seconds`, in
 * place: the keyguard holds this very object. Returns a function that puts the originals back.
 */
export function observeSealer(
  metrics: NodeMetrics,
  sealer: object,
  ops: readonly string[] = ['wrap', 'unwrap', 'publicKey'],
): () => void {
  const target = sealer as Record<string, unknown>
  const originals = new Map<string, unknown>()
  for (const op of ops) {
    const fn = target[op]
    if (typeof fn !== 'function') continue
    originals.set(op, fn)
    target[op] = async (...args: unknown[]) => {
      const end = metrics.tpmOpLatency.startTimer({ op })
      try {
        return await (fn as (...a: unknown[]) => Promise<unknown>).apply(sealer, args)
      } finally {
        end()
      }
    }
  }
  return () => {
    for (const [op, fn] of originals) target[op] = fn
  }
}
