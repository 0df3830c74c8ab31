// A measured run that never ends: the agent on the swtpm at argv[2] extends PCR 23 after
// load, the program loops, and the parent SIGKILLs this process once it prints "measured".
// Nothing after that runs, as when an executor host dies mid-run.
import { randomBytes } from 'node:crypto'
import { createAttestationAgent } from '@digicap/attestation/agent'
import { runtimeDigest } from '@digicap/capsule-core'
import { quickjsSandbox, runInSandbox, runLifecycle } from '../../src/index.ts'

const agent = createAttestationAgent({ tcti: process.argv[2] ?? '' })
const sandbox = quickjsSandbox()
const runtime = {
  kind: 'quickjs',
  entry: 'main.js',
  memoryLimitBytes: 1 << 24,
  timeLimitMs: 60_000,
} as const
const lifecycle = runLifecycle()
lifecycle.on('after-load', () => {
  process.stdout.write('measured\n')
})
const bytes = () => new Uint8Array(randomBytes(32))
await runInSandbox({
  sandbox,
  job: { runtime, code: new TextEncoder().encode('for (;;) {}'), input: new Uint8Array(0) },
  lifecycle,
  measure: {
    agent,
    values: {
      runtimeDigest: runtimeDigest(sandbox.runtimeId, runtime),
      capsuleHeaderHash: bytes(),
      grantId: bytes(),
      ephemeralPublicKey: bytes(),
    },
    keyBuffers: [],
  },
})
