/**
 * The daemon's side of a job socket (executor ADR 0035, pi-node ADR 0107): a CLI hands its job
 * to the running daemon instead of starting a second node. A unix socket in the data folder,
 * mode 0600, plus a token file only the owner can read (Node cannot read a unix peer's uid, so
 * the token is the owner check: a peer that cannot read the data folder cannot send it).
 * Every bad request gets a typed error frame (the spec's `code`) and its connection closed; the
 * daemon keeps serving.
 *
 * One daemon per data folder and socket: a listening socket in Linux's abstract namespace,
 * named after the folder, is the lock. Binding it is atomic and the kernel frees it when the
 * process dies (kill -9 included), so two daemons starting at once cannot both take the
 * folder, and a crash leaves no lock behind. The socket file and the token are made only under
 * that lock.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { statSync } from 'node:fs'
import { chmod, link, readFile, rm, stat } from 'node:fs/promises'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { writeFileAtomic } from '../files.ts'
import {
  encodeFrame,
  type FrameError,
  FrameReader,
  type JobAnswer,
  jobSocketPaths,
} from './protocol.ts'

/** What a daemon's socket accepts and does: its names, its request check and its job. */
export interface JobSocketSpec<J> {
  /** The files' name: `<name>.sock` and `<name>.token` in the data folder. */
  readonly name: string
  /** The abstract lock's prefix, one per daemon and socket, e.g. `digicap-executor`. */
  readonly lockPrefix: string
  /** Wire version; a request of another one is refused (`reason: 'version'`). */
  readonly version: number
  /** The code of refusal frames, e.g. `RUN_SOCKET`. */
  readonly code: string
  /** Largest request frame read. */
  readonly maxRequestBytes: number
  /** `details.error` of a request `parse` refused. Default `request fields`. */
  readonly malformed?: string
  /** The typed error for a socket that cannot start (`in-use`, `path-too-long`). */
  error(shortMessage: string, options: { details: Record<string, unknown>; hint: string }): Error
  /** Hints of those errors: who else holds the folder, what happens without the socket. */
  readonly hints: { readonly inUse: string; readonly pathTooLong: string }
  /** The request's own fields (version and token are checked already); undefined if malformed. */
  parse(request: Record<string, unknown>): J | undefined
  /** For the daemon's log: what a job is about (e.g. `{ cid }`). */
  about(job: J): Record<string, string>
  /** Runs one job: its result document, or a rejection with a typed error. */
  run(
    job: J,
    io: { readonly signal: AbortSignal; send(answer: JobAnswer): void },
  ): Promise<Record<string, unknown>>
}

/** Each job handed over and each refusal, for the daemon's log and metrics. */
export interface JobSocketEvent {
  readonly type: 'job' | 'refused'
  /** The job's {@link JobSocketSpec.about}, or the refusal's `reason`. */
  readonly about: Record<string, string>
}

export interface ServeJobSocketInit {
  readonly dataDir: string
  /** Jobs in progress or waiting at once; one more is refused `busy`. Default 4. */
  readonly maxConnections?: number | undefined
  /** Time a connection has to send its request. Default 5 000 ms. */
  readonly requestTimeoutMs?: number | undefined
  /**
   * Time a CLI has to close its side once its answer is sent; then its connection is cut, so a
   * CLI that stopped reading (Ctrl-Z) cannot hold a slot. Default 5 000 ms.
   */
  readonly lingerMs?: number | undefined
  /** Time `close()` waits for the jobs it aborts to clean up. Default 30 000 ms. */
  readonly closeTimeoutMs?: number | undefined
  readonly onEvent?: ((e: JobSocketEvent) => void) | undefined
}

export interface JobSocketServer {
  readonly path: string
  /** Jobs handed over and requests refused since start. */
  stats(): { jobs: number; refused: number }
  /**
   * Stops taking connections, aborts the jobs in progress and waits for their clean-up up to
   * `closeTimeoutMs`, then removes the socket and the token.
   */
  close(): Promise<void>
}

/** A unix socket path's limit on Linux (`sun_path`, 108 bytes with the final NUL). */
export const MAX_SOCKET_PATH_BYTES = 107
/** Stage and progress frames are skipped while this much is queued for a CLI not reading. */
const MAX_QUEUED_BYTES = 256 * 1024

/**
 * The data folder's lock: an abstract socket name (no file), from the folder's device and inode,
 * so that two paths to one folder (a bind mount) share it and one path naming two folders (two
 * mount namespaces) does not. Linux only, and within one network namespace: elsewhere (macOS,
 * Windows) libuv refuses the name, and the socket file's probe stands in.
 */
function lockName(dataDir: string, prefix: string): string | undefined {
  if (process.platform !== 'linux') return undefined
  let id = dataDir
  try {
    const { dev, ino } = statSync(dataDir)
    id = `${dev}:${ino}`
  } catch {
    // a folder that does not exist yet: its own name
  }
  return `\0${prefix}-${createHash('sha256').update(id).digest('hex').slice(0, 32)}`
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
 * Serves `spec`'s jobs on `<dataDir>/<name>.sock`.
 *
 * @throws the spec's error (`details.reason`: `in-use` when another daemon serves this data
 *   folder, `path-too-long` when the socket's path exceeds 107 bytes).
 * @example
 * ```ts
 * const sock = await serveJobSocket(runSpec, { dataDir, onEvent: (e) => log(e) })
 * // … on stop:
 * await sock.close()
 * ```
 */
export async function serveJobSocket<J>(
  spec: JobSocketSpec<J>,
  init: ServeJobSocketInit,
): Promise<JobSocketServer> {
  const { socket: path, token: tokenPath } = jobSocketPaths(init.dataDir, spec.name)
  const maxConnections = init.maxConnections ?? 4
  const requestTimeoutMs = init.requestTimeoutMs ?? 5000
  const lingerMs = init.lingerMs ?? 5000
  const closeTimeoutMs = init.closeTimeoutMs ?? 30_000
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw spec.error('The data folder’s path is too long for a unix socket', {
      details: { reason: 'path-too-long', path, bytes: Buffer.byteLength(path) },
      hint: spec.hints.pathTooLong,
    })
  }
  // The lock first: nothing of another daemon's (socket, token) is touched before it is held.
  const inUse = (answering: boolean) =>
    spec.error('Another daemon serves this data folder', {
      details: { reason: 'in-use', path, answers: answering },
      hint: spec.hints.inUse,
    })
  const lock = createServer((s) => s.destroy())
  const name = lockName(init.dataDir, spec.lockPrefix)
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
  let jobs = 0
  let refused = 0
  const live = new Set<Socket>()
  /** Each job in progress: its abort, and its end (clean-up included). */
  const running = new Map<AbortController, Promise<void>>()
  let closing: Promise<void> | undefined

  const handle = (sock: Socket) => {
    live.add(sock)
    const ac = new AbortController()
    let started = false
    const send = (a: JobAnswer) => {
      if (sock.destroyed) return
      // A CLI that stopped reading gets no more stage or progress lines (they only inform),
      // so what waits for it stays bounded; its result or error is always sent.
      if ((a.type === 'stage' || a.type === 'progress') && sock.writableLength > MAX_QUEUED_BYTES)
        return
      sock.write(encodeFrame(a))
    }
    const refuse = (reason: string, details: Record<string, unknown> = {}) => {
      refused++
      init.onEvent?.({ type: 'refused', about: { reason } })
      const answer: JobAnswer = {
        type: 'error',
        code: spec.code,
        shortMessage: 'The daemon refused the request',
        details: { reason, ...details },
      }
      sock.end(encodeFrame(answer))
      setTimeout(() => sock.destroy(), 1000).unref()
    }
    sock.once('close', () => {
      live.delete(sock)
      clearTimeout(timer)
      // The CLI went away (Ctrl-C): stop its job; clean-up still runs.
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
    const reader = new FrameReader(spec.maxRequestBytes)
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
      if (req.v !== spec.version) return refuse('version', { version: spec.version })
      const sent = typeof req.token === 'string' ? Buffer.from(req.token, 'hex') : Buffer.alloc(0)
      if (sent.byteLength !== token.byteLength || !timingSafeEqual(sent, token)) {
        return refuse('token')
      }
      const job = spec.parse(req)
      if (job === undefined)
        return refuse('malformed', { error: spec.malformed ?? 'request fields' })
      // A request that arrives while the daemon stops starts nothing close() would not wait for.
      if (closing !== undefined) return refuse('stopping')
      jobs++
      init.onEvent?.({ type: 'job', about: spec.about(job) })
      const run = spec
        .run(job, { signal: ac.signal, send })
        .then(
          (result) => send({ type: 'result', result }),
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
  /** Removes the socket file and the token only while they are this daemon's. */
  const removeOwn = async () => {
    const held = await readFile(tokenPath, 'utf8').catch(() => undefined)
    if (held === token.toString('hex')) await rm(tokenPath, { force: true })
    const file = await stat(path).catch(() => undefined)
    if (file !== undefined && file.ino === bound) await rm(path, { force: true })
  }
  try {
    // Under the lock, a socket file and a token here are a dead daemon's: removed before this
    // socket answers, so no CLI reads the old token and is refused.
    await rm(tokenPath, { force: true })
    await rm(path, { force: true })
    // Bound under a random name of its own, made 0600, and only then linked as <name>.sock: no
    // client finds it before its mode is set (and none is served without the token). Not the
    // umask: it is process-wide, and a daemon's other threads create folders meanwhile.
    // Linked, because libuv unlinks a server's bound name when it closes, and that name must
    // never be a socket another daemon made since.
    const own = join(dirname(path), `r${randomBytes(8).toString('hex')}`)
    await listen(server, own)
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
    stats: () => ({ jobs, refused }),
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
        // Abort every job in progress and wait for its clean-up before the caller stops the
        // node and exits: a job cut short must not leave its files or keys behind.
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
