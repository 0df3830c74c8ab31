/**
 * The daemon's side of the run socket (ADR 0035): `executor-node run` hands its job to the
 * running `serve` instead of starting a second libp2p node. A unix socket in the data folder,
 * mode 0600, plus a token file only the owner can read (Node cannot read a unix peer's uid, so
 * the token is the owner check: a peer that cannot read the data folder cannot send it).
 * Every bad request gets a typed `RUN_SOCKET` error frame and its connection closed; the
 * daemon keeps serving.
 *
 * One daemon per data folder: a listening socket in Linux's abstract namespace, named after the
 * folder, is the lock. Binding it is atomic and the kernel frees it when the process dies
 * (kill -9 included), so two daemons starting at once cannot both take the folder, and a crash
 * leaves no lock behind. The socket file and the token are made only under that lock.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { statSync } from 'node:fs'
import { chmod, link, readFile, rm, stat } from 'node:fs/promises'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { writeFileAtomic } from '@digicap/cli-kit'
import type { Executor, RunCapsuleOptions } from '../../executor.ts'
import {
  encodeFrame,
  type FrameError,
  FrameReader,
  MAX_REQUEST_BYTES,
  RUN_SOCKET_VERSION,
  type RunAnswer,
  runSocketPaths,
} from './protocol.ts'

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

export interface ServeRunSocketInit {
  readonly dataDir: string
  /** Runs in progress or waiting at once; one more is refused `busy`. Default 4. */
  readonly maxConnections?: number | undefined
  /** Time a connection has to send its request. Default 5 000 ms. */
  readonly requestTimeoutMs?: number | undefined
  /**
   * Time a CLI has to close its side once its answer is sent; then its connection is cut, so a
   * CLI that stopped reading (Ctrl-Z) cannot hold a slot. Default 5 000 ms.
   */
  readonly lingerMs?: number | undefined
  /** Time `close()` waits for the runs it aborts to clean up. Default 30 000 ms. */
  readonly closeTimeoutMs?: number | undefined
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

/** A unix socket path's limit on Linux (`sun_path`, 108 bytes with the final NUL). */
const MAX_SOCKET_PATH_BYTES = 107
/** Stage and progress frames are skipped while this much is queued for a CLI not reading. */
const MAX_QUEUED_BYTES = 256 * 1024

/**
 * The data folder's lock: an abstract socket name (no file), from the folder's device and inode,
 * so that two paths to one folder (a bind mount) share it and one path naming two folders (two
 * mount namespaces) does not (review). Linux only, and within one network namespace: elsewhere
 * (macOS, Windows) libuv refuses the name, and the socket file's probe stands in, as before.
 */
function lockName(dataDir: string): string | undefined {
  if (process.platform !== 'linux') return undefined
  let id = dataDir
  try {
    const { dev, ino } = statSync(dataDir)
    id = `${dev}:${ino}`
  } catch {
    // a folder that does not exist yet: its own name
  }
  return `\0digicap-executor-${createHash('sha256').update(id).digest('hex').slice(0, 32)}`
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

function refusal(reason: string, details: Record<string, unknown> = {}): RunAnswer {
  return {
    type: 'error',
    code: 'RUN_SOCKET',
    shortMessage: 'The daemon refused the request',
    details: { reason, ...details },
  }
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

/** Is another daemon answering on `path`? (A socket file left by a crash does not answer.) */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
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
  const { socket: path, token: tokenPath } = runSocketPaths(init.dataDir)
  const maxConnections = init.maxConnections ?? 4
  const requestTimeoutMs = init.requestTimeoutMs ?? 5000
  const lingerMs = init.lingerMs ?? 5000
  const closeTimeoutMs = init.closeTimeoutMs ?? 30_000
  const { RunSocketError } = await import('./errors.ts')
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new RunSocketError('The data folder’s path is too long for a unix socket', {
      details: { reason: 'path-too-long', path, bytes: Buffer.byteLength(path) },
      hint: `A data folder whose run.sock path is at most ${MAX_SOCKET_PATH_BYTES} bytes gets the hand-off; without it \`executor-node run\` starts its own node.`,
    })
  }
  // The lock first: nothing of another daemon's (socket, token) is touched before it is held.
  const inUse = (answering: boolean) =>
    new RunSocketError('Another daemon serves this data folder', {
      details: { reason: 'in-use', path, answers: answering },
      hint: 'Stop the other `executor-node serve` first.',
    })
  const lock = createServer((s) => s.destroy())
  const name = lockName(init.dataDir)
  if (name === undefined) {
    // no abstract namespace: a daemon that answers on the socket file is the lock (racy)
    if (await answers(path)) throw inUse(true)
  } else {
    try {
      await listen(lock, name)
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EADDRINUSE') throw err
      throw inUse(await answers(path))
    }
  }
  const token = randomBytes(32)
  let runs = 0
  let refused = 0
  const live = new Set<Socket>()
  /** Each run in progress: its abort, and its end (clean-up included). */
  const running = new Map<AbortController, Promise<void>>()
  let closing: Promise<void> | undefined

  const handle = (sock: Socket) => {
    live.add(sock)
    const ac = new AbortController()
    let started = false
    const send = (a: RunAnswer) => {
      if (sock.destroyed) return
      // A CLI that stopped reading gets no more stage or progress lines (they only inform),
      // so what waits for it stays bounded; its result or error is always sent.
      if ((a.type === 'stage' || a.type === 'progress') && sock.writableLength > MAX_QUEUED_BYTES)
        return
      sock.write(encodeFrame(a))
    }
    const refuse = (reason: string, details: Record<string, unknown> = {}) => {
      refused++
      init.onEvent?.(event('refused', { reason }))
      sock.end(encodeFrame(refusal(reason, details)))
      setTimeout(() => sock.destroy(), 1000).unref()
    }
    sock.once('close', () => {
      live.delete(sock)
      clearTimeout(timer)
      // The CLI went away (Ctrl-C): stop its run; clean-up still runs.
      if (started) ac.abort()
    })
    sock.on('error', () => {})
    const timer = setTimeout(() => {
      if (!started) refuse('timeout', { requestTimeoutMs })
    }, requestTimeoutMs)
    if (live.size > maxConnections) {
      refuse('busy', { maxConnections })
      return
    }
    const reader = new FrameReader(MAX_REQUEST_BYTES)
    sock.on('data', (chunk: Buffer) => {
      if (started) return refuse('malformed', { error: 'one request per connection' })
      let frames: unknown[]
      try {
        frames = reader.push(chunk)
      } catch (err) {
        const e = err as FrameError
        return refuse(e.reason ?? 'malformed', e.details ?? {})
      }
      const req = frames[0] as Record<string, unknown> | undefined
      if (req === undefined) return
      started = true
      clearTimeout(timer)
      if (req === null || typeof req !== 'object') return refuse('malformed')
      if (req.v !== RUN_SOCKET_VERSION) {
        return refuse('version', { version: RUN_SOCKET_VERSION })
      }
      const sent = typeof req.token === 'string' ? Buffer.from(req.token, 'hex') : Buffer.alloc(0)
      if (sent.byteLength !== token.byteLength || !timingSafeEqual(sent, token)) {
        return refuse('token')
      }
      const options = runOptions(req.options)
      if (typeof req.cid !== 'string' || req.cid.length > 200 || !options) {
        return refuse('malformed', { error: 'cid or options' })
      }
      // A request that arrives while the daemon stops starts nothing close() would not wait for.
      if (closing !== undefined) return refuse('stopping')
      runs++
      init.onEvent?.(event('run', { cid: req.cid }))
      const run = executor
        .runCapsule(req.cid, {
          ...options,
          signal: ac.signal,
          onStage: (event) => send({ type: 'stage', event: { ...event } }),
          onFetchProgress: (progress) => send({ type: 'progress', progress: { ...progress } }),
        })
        .then(
          (result) => send({ type: 'result', result: { ...result } }),
          (err: {
            code?: string
            shortMessage?: string
            message?: string
            details?: object
            hint?: string
          }) =>
            send({
              type: 'error',
              code: err.code ?? 'INTERNAL',
              shortMessage: err.shortMessage ?? err.message ?? String(err),
              details: { ...(err.details ?? {}) },
              ...(err.hint ? { hint: err.hint } : {}),
            }),
        )
        .finally(() => {
          running.delete(ac)
          sock.end()
          // The CLI closes on its answer; one that does not (stopped, never reading) is cut.
          setTimeout(() => sock.destroy(), lingerMs).unref()
        })
      running.set(ac, run)
    })
  }

  const server = createServer(handle)
  let bound: number | undefined
  /** Removes the socket file and the token only while they are this daemon's (review). */
  const removeOwn = async () => {
    const held = await readFile(tokenPath, 'utf8').catch(() => undefined)
    if (held === token.toString('hex')) await rm(tokenPath, { force: true })
    const file = await stat(path).catch(() => undefined)
    if (file !== undefined && file.ino === bound) await rm(path, { force: true })
  }
  try {
    // Under the lock, a socket file and a token here are a dead daemon's: removed before this
    // socket answers, so no CLI reads the old token and is refused (review: 6 of 20 restarts).
    await rm(tokenPath, { force: true })
    await rm(path, { force: true })
    // The socket is made 0600 as it is bound (umask), then checked with chmod: no window in
    // which another user could connect.
    // Bound under a name of its own, then linked as run.sock: libuv unlinks a server's bound
    // name when it closes, and that name must never be a run.sock another daemon made since.
    const own = join(dirname(path), `r${randomBytes(3).toString('hex')}`)
    const umask = process.umask(0o177)
    try {
      await listen(server, own)
    } finally {
      process.umask(umask)
    }
    try {
      await chmod(own, 0o600)
      await link(own, path)
    } finally {
      await rm(own, { force: true })
    }
    bound = (await stat(path)).ino
    // The token last, once the socket answers: a CLI that reads it finds the daemon.
    await writeFileAtomic(tokenPath, token.toString('hex'))
  } catch (err) {
    server.close()
    if (lock.listening) lock.close()
    await removeOwn()
    throw err
  }

  return {
    path,
    stats: () => ({ runs, refused }),
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
        // Abort every run in progress and wait for its clean-up before the caller stops the
        // node and exits: a run cut short must not leave its workspace or keys behind.
        const ends = [...running.entries()].map(([ac, end]) => {
          ac.abort()
          return end
        })
        let timer: ReturnType<typeof setTimeout> | undefined
        await Promise.race([
          Promise.allSettled(ends),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, closeTimeoutMs)
          }),
        ])
        clearTimeout(timer)
        for (const s of live) s.destroy()
        await stopped
        await removeOwn()
        if (lock.listening) lock.close()
      })()
      return closing
    },
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
