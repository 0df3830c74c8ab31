#!/usr/bin/env node
/** The `executor-node` binary. */
import { runCli } from './main.ts'

const stop = () =>
  new Promise<string>((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s))
  })
const { stdout, stderr, env } = process
const code = await runCli(process.argv.slice(2), { stdout, stderr, env, waitForStop: stop })
// Everything was stopped, but libp2p's address manager leaves a 1 s timer behind: waiting for
// the event loop cost every command a second. Output to pipes and files is synchronous on Linux.
process.exit(code)
