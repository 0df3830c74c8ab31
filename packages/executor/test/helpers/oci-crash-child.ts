/**
 * An executor process for the crash tests: runs one image job in the `oci` sandbox (blobs from
 * the helia blockstore the test fills) and prints each step as a JSON line, so the test can
 * SIGKILL it at a chosen point. The job arrives as one JSON line on stdin (the test starts its
 * children ahead, while it seals: loading helia is the slow part). With no `dataDir` it only
 * makes the sandbox and prints the start-up sweep's report: a fresh executor start.
 */
import { ociSandbox } from '../../src/sandbox/oci/oci-sandbox.ts'

interface ChildJob {
  manifestDigest: string
  spec: string
  capsuleId: string
  dataKey: string
  timeLimitMs: number
}

const emit = (doc: unknown) => process.stdout.write(`${JSON.stringify(doc)}\n`)
const { stateDir, dataDir, runc } = JSON.parse(process.env.OCI_CRASH_CHILD ?? '{}') as {
  stateDir: string
  dataDir?: string
  /** A runc wrapper (fault injection), else `runc`. */
  runc?: string
}
// helia only for a job: a start that only sweeps stays quick
const p2p = dataDir ? await import('@digicap/p2p') : undefined
const node =
  p2p && dataDir ? await p2p.createDigicapNode({ dataDir, datastore: 'memory' }) : undefined
const refuse = () => {
  throw new Error('this child runs no job')
}
const sandbox = ociSandbox({
  store: node && p2p ? p2p.heliaCapsuleStore(node.helia) : { put: refuse, get: refuse },
  stateDir,
  runc,
  onSweep: (sweep) => emit({ sweep }),
  onStep: (e) => emit({ step: e.step }),
})
if (node) {
  emit({ ready: true })
  const job = await new Promise<ChildJob>((resolve) => {
    let line = ''
    process.stdin.on('data', (d) => {
      line += d
      if (line.includes('\n')) resolve(JSON.parse(line))
    })
  })
  process.stdin.pause()
  const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'))
  await sandbox
    .run({
      runtime: {
        kind: 'oci',
        entry: job.manifestDigest,
        memoryLimitBytes: 64 * 1024 * 1024,
        timeLimitMs: job.timeLimitMs,
      },
      code: new Uint8Array(Buffer.from(job.spec, 'base64')),
      input: new TextEncoder().encode('a,b\n1,2\n'),
      capsuleKey: { capsuleId: hex(job.capsuleId), dataKey: hex(job.dataKey) },
    })
    .then(
      (r) => emit({ done: new TextDecoder().decode(r.output) }),
      (e: { code?: string }) => emit({ error: e.code }),
    )
  await node.stop()
}
// with no job, the process lives until the sweep (started as the sandbox was made) reported
