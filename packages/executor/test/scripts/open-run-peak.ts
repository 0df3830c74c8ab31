// One open → run of a sealed capsule in a fresh process, as the executor does it, and the
// process's peak RSS (VmHWM) at the end: `file` streams the plaintext to a tmpfs file and
// WASI reads it by chunks (ADR 0035); `memory` opens it into one buffer (the path before).
// argv: <capsule> <owner> <payloadOffset> <dataKeyHex> <file|memory> <wasm-b64> <tmpfs dir>
import { closeSync, openSync, readFileSync, readSync } from 'node:fs'
import { decodeBundle, parseCapsuleHeader } from '@digicap/capsule-core'
// The modules themselves, not the package index (which loads libp2p): a quicker start.
import { jobFromBundle } from '../../src/load/bundle.ts'
import { jobFromBundleFile } from '../../src/load/bundle-file.ts'
import { openPayloadToFile, openPayloadToMemory } from '../../src/run/open-payload.ts'
import { runInSandbox } from '../../src/run/run.ts'
import { createRunWorkspace } from '../../src/run/workspace.ts'
import type { SandboxJob } from '../../src/sandbox/types.ts'
import { wasiSandbox } from '../../src/sandbox/wasi/sandbox.ts'

const [path, owner, payloadOffset, keyHex, mode, wasmB64, shm] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
  string,
]
const head = new Uint8Array(Number(payloadOffset))
const fd = openSync(path, 'r')
readSync(fd, head, 0, head.byteLength, 0)
closeSync(fd)
const parsed = parseCapsuleHeader(head)
const plaintextSize = parsed.header.payload.plaintextSize
const src = { path, owner: owner as `0x${string}`, plaintextSize, parsed }
const dataKey = Buffer.from(keyHex, 'hex')
const runtime = {
  kind: 'wasi' as const,
  entry: 'main.wasm',
  memoryLimitBytes: 1 << 20,
  timeLimitMs: 60_000,
}
const ws = createRunWorkspace()
let job: SandboxJob
if (mode === 'file') {
  const dir = await ws.tempDir('peak-', shm)
  const f = await openPayloadToFile(src, dataKey, { dir, workspace: ws })
  job = await jobFromBundleFile({
    runtime,
    path: f.path,
    fileSize: f.size,
    payloadDigest: f.payloadDigest,
  })
} else {
  const plaintext = new Uint8Array(src.plaintextSize)
  ws.trackBuffer(plaintext)
  const payloadDigest = await openPayloadToMemory(src, plaintext, dataKey)
  job = { ...jobFromBundle(runtime, decodeBundle(plaintext)), payloadDigest }
}
job = { ...job, code: Buffer.from(wasmB64, 'base64') }
const r = await runInSandbox({ sandbox: wasiSandbox(), job, workspace: ws })
const peakKiB = Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1])
const out = new DataView(r.result.output.buffer, r.result.output.byteOffset)
process.stdout.write(
  `${JSON.stringify({ peakKiB, length: out.getUint32(0, true), cleanup: r.cleanup })}\n`,
)
