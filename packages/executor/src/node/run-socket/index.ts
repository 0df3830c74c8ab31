/**
 * @packageDocumentation
 *
 * `@digicap/executor/run-socket` — the hand-off of `executor-node run` to a running daemon
 * over a unix socket in the data folder (ADR 0035), and the light pieces a command line needs
 * before it decides to start a node of its own (progress lines, printable results). Nothing
 * here loads libp2p, helia, ethers or a sandbox.
 */
export { progressLines } from '../../run/progress-lines.ts'
export { printable } from '../printable.ts'
export { type RunViaDaemonHandlers, runViaDaemon } from './client.ts'
export { RunSocketError } from './errors.ts'
export {
  encodeFrame,
  FrameReader,
  MAX_ANSWER_BYTES,
  MAX_REQUEST_BYTES,
  RUN_SOCKET_VERSION,
  type RunAnswer,
  type RunRequest,
  runSocketPaths,
} from './protocol.ts'
export {
  pendingNote,
  type RunFlags,
  type RunOutputSource,
  runOptionsOf,
  runOutput,
  startLine,
} from './run-output.ts'
export {
  type EarlyRunSocket,
  openRunSocket,
  type RunSocketEvent,
  type RunSocketServer,
  type ServeRunSocketInit,
  serveRunSocket,
} from './server.ts'
