/**
 * The daemon's side of the run socket (ADR 0035): `executor-node run` hands its job to the
 * running `serve` instead of starting a second libp2p node. The socket, its token, its lock and
 * its refusals are `@digicap/cli-kit/job-socket`'s (shared with `pi-node serve`'s seal socket,
 * ADR 0107); this file says what a run request holds and how a run is done.
 */
import { type ServeJobSocketInit, serveJobSocket } from '@digicap/cli-kit/job-socket'
import type { Executor, RunCapsuleOptions } from '../../executor.ts'
import { MAX_REQUEST_BYTES, RUN_SOCKET_VERSION } from './protocol.ts'

export interface RunSocketEvent {
  readonly type: 'run' | 'refused' | 'unavailable'
  readonly cid?: string | undefined
  readonly reason?: string | undefined
  /** The event as a daemon log line: a JSON document and text. */
  readonly doc: Record<string, unknown>
  readonly text: string
}

function event(
  type: RunSocketEvent['type'],
  about: { cid?: string; reason?: string },
): RunSocketEvent {
  const text =
    type === 'run'
      ? `ran ${about.cid} for the CLI`
      : type === 'refused'
        ? `refused (${about.reason})`
        : `unavailable (${about.reason}): \`executor-node run\` starts its own node`
  return {
    type,
    ...about,
    doc: { event: `run-socket-${type}`, ...about },
    text: `run socket: ${text}\n`,
  }
}

/** The job socket's options (`maxConnections`, timeouts), with the run socket's events. */
export interface ServeRunSocketInit extends Omit<ServeJobSocketInit, 'onEvent'> {
  /** Each run handed over, each refusal: for the daemon's log and metrics. */
  readonly onEvent?: ((e: RunSocketEvent) => void) | undefined
}

export interface RunSocketServer {
  readonly path: string
  /** Runs handed over and requests refused since start. */
  stats(): { runs: number; refused: number }
  /**
   * Stops taking connections, aborts the runs in progress and waits for their clean-up
   * (workspace, keys, PCR 23) up to `closeTimeoutMs`, then removes the socket and the token.
   */
  close(): Promise<void>
}

/** The request's options, checked field by field; undefined when one is not of its type. */
function runOptions(o: unknown): RunCapsuleOptions | undefined {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return undefined
  const r = o as Record<string, unknown>
  const strings = (v: unknown) =>
    Array.isArray(v) && v.length <= 64 && v.every((s) => typeof s === 'string' && s.length <= 4096)
  if (r.fast !== undefined && typeof r.fast !== 'boolean') return undefined
  if (r.fallbackToChain !== undefined && typeof r.fallbackToChain !== 'boolean') return undefined
  if (r.keyguardAddrs !== undefined && !strings(r.keyguardAddrs)) return undefined
  if (r.args !== undefined && !strings(r.args)) return undefined
  if (r.fee !== undefined && !(typeof r.fee === 'string' && /^[0-9]{1,78}$/.test(r.fee))) {
    return undefined
  }
  const t = r.fetchTimeoutMs
  if (t !== undefined && !(Number.isSafeInteger(t) && (t as number) > 0)) return undefined
  return {
    ...(r.fast === undefined ? {} : { fast: r.fast as boolean }),
    ...(r.fallbackToChain === undefined ? {} : { fallbackToChain: r.fallbackToChain as boolean }),
    ...(r.keyguardAddrs === undefined ? {} : { keyguardAddrs: r.keyguardAddrs as string[] }),
    ...(r.args === undefined ? {} : { args: r.args as string[] }),
    ...(r.fee === undefined ? {} : { fee: BigInt(r.fee as string) }),
    ...(t === undefined ? {} : { fetchTimeoutMs: t as number }),
  }
}

/**
 * @throws {RunSocketError} (`reason: 'in-use'`) when another daemon serves this data folder.
 * @example
 * ```ts
 * const sock = await serveRunSocket(en.executor, { dataDir, onEvent: (e) => log(e) })
 * // … on stop:
 * await sock.close()
 * ```
 */
export async function serveRunSocket(
  executor: Pick<Executor, 'runCapsule'>,
  init: ServeRunSocketInit,
): Promise<RunSocketServer> {
  const { RunSocketError } = await import('./errors.ts')
  const server = await serveJobSocket<{ cid: string; options: RunCapsuleOptions }>(
    {
      name: 'run',
      lockPrefix: 'digicap-executor',
      version: RUN_SOCKET_VERSION,
      code: 'RUN_SOCKET',
      maxRequestBytes: MAX_REQUEST_BYTES,
      malformed: 'cid or options',
      error: (shortMessage, options) => new RunSocketError(shortMessage, options),
      hints: {
        inUse: 'Stop the other `executor-node serve` first.',
        pathTooLong:
          'A data folder whose run.sock path is at most 107 bytes gets the hand-off; without it `executor-node run` starts its own node.',
      },
      parse(req) {
        const options = runOptions(req.options)
        if (typeof req.cid !== 'string' || req.cid.length > 200 || !options) return undefined
        return { cid: req.cid, options }
      },
      about: (job) => ({ cid: job.cid }),
      run: async ({ cid, options }, { signal, send }) => ({
        ...(await executor.runCapsule(cid, {
          ...options,
          signal,
          onStage: (event) => send({ type: 'stage', event: { ...event } }),
          onFetchProgress: (progress) => send({ type: 'progress', progress: { ...progress } }),
        })),
      }),
    },
    {
      ...init,
      onEvent: (e) =>
        init.onEvent?.(
          e.type === 'job'
            ? event('run', { cid: e.about.cid as string })
            : event('refused', { reason: e.about.reason as string }),
        ),
    },
  )
  return {
    path: server.path,
    stats: () => {
      const { jobs, refused } = server.stats()
      return { runs: jobs, refused }
    },
    close: () => server.close(),
  }
}

/** A run socket opened before its daemon's node is up ({@link openRunSocket}). */
export interface EarlyRunSocket {
  /** The node is up: runs handed over (and waiting) go to `executor`. */
  ready(executor: Pick<Executor, 'runCapsule'>): void
  /** The node did not start: runs waiting fail with `err`, the socket closes, `err` is thrown. */
  abandon(err: unknown): Promise<never>
  /** {@link RunSocketServer.close}; nothing when the socket could not be made. */
  close(): Promise<void>
}

/**
 * The run socket for a daemon that is still starting: it takes the data folder's lock first, so
 * a second daemon on the folder stops here, before it starts a node with the same peer id. Runs
 * handed over before `ready` wait for the node. A socket that cannot be made for another reason
 * (`path-too-long`, a file system error) is an `unavailable` event: the daemon serves without
 * the hand-off, and `executor-node run` starts its own node.
 *
 * @throws {RunSocketError} (`reason: 'in-use'`) when another daemon serves this data folder.
 * @example
 * ```ts
 * const sock = await openRunSocket({ dataDir, onEvent: (e) => log(e) })
 * const node = await startNode().catch(sock.abandon)
 * sock.ready(node.executor)
 * ```
 */
export async function openRunSocket(init: ServeRunSocketInit): Promise<EarlyRunSocket> {
  let ready: (executor: Pick<Executor, 'runCapsule'>) => void = () => {}
  let failed: (err: unknown) => void = () => {}
  const executor = new Promise<Pick<Executor, 'runCapsule'>>((resolve, reject) => {
    ready = resolve
    failed = reject
  })
  executor.catch(() => {})
  const server = await serveRunSocket(
    { runCapsule: async (cid, options) => (await executor).runCapsule(cid, options) },
    init,
  ).catch((err: { code?: string; details?: { reason?: string }; message?: string }) => {
    if (err?.code === 'RUN_SOCKET' && err.details?.reason === 'in-use') throw err
    const reason = err?.details?.reason ?? err?.code ?? String(err?.message ?? err)
    init.onEvent?.(event('unavailable', { reason }))
    return undefined
  })
  const close = async () => server?.close()
  return {
    ready,
    close,
    async abandon(err) {
      failed(err)
      await close()
      throw err
    },
  }
}
