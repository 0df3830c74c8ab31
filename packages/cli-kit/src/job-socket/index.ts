/**
 * @packageDocumentation
 *
 * `@digicap/cli-kit/job-socket`: a CLI hands its job to the running daemon of its data folder
 * over a unix socket (executor ADR 0035, pi-node ADR 0107): frames, the daemon's server with
 * its token and lock, the CLI's client. Light: no libp2p, helia or ethers load with it.
 *
 * @example
 * ```ts
 * // daemon
 * const sock = await serveJobSocket(spec, { dataDir })
 * // CLI
 * const result = await askDaemon({ dataDir, name: 'seal', version: 1, … }, { file })
 * ```
 */
export { type AskDaemonHandlers, type AskDaemonInit, askDaemon } from './client.ts'
export {
  encodeFrame,
  FrameError,
  FrameReader,
  type JobAnswer,
  jobSocketPaths,
} from './protocol.ts'
export {
  type JobSocketEvent,
  type JobSocketServer,
  type JobSocketSpec,
  MAX_SOCKET_PATH_BYTES,
  type ServeJobSocketInit,
  serveJobSocket,
} from './server.ts'
