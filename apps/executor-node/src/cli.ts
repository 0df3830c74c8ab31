#!/usr/bin/env node
/** The `executor-node` binary. */
import { runCli } from './main.ts'

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  waitForStop: () =>
    new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'))
      process.once('SIGTERM', () => resolve('SIGTERM'))
    }),
})
// Every component was stopped when runCli returned, but libp2p's address manager leaves a
// 1 s timer behind after stop: waiting for the event loop to drain cost every command that
// started a node a second. Output to pipes and files is synchronous on Linux, so nothing is lost.
process.exit(code)
