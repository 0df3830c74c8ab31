/**
 * ADR 0055: the run measurement is the SHA-256 of exactly the bytes the sandbox runs on. At 40
 * MiB (the open hashes on its worker from 32 MiB) the digest extended for the run equals one
 * computed apart from the plaintext; and a plaintext file changed between the open and the run
 * (truncated, rewritten in place with the same size, replaced by another file) is refused
 * before anything is measured or run, and still wiped.
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { open, rename, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { DEFAULT_CHUNK_SIZE, payloadDigest, runtimeDigest } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import { runLifecycle } from '../src/run/lifecycle.ts'
import { openJob } from '../src/run/open-job.ts'
import { memoryFsRoot } from '../src/run/open-payload.ts'
import { runInSandbox } from '../src/run/run.ts'
import { createRunWorkspace } from '../src/run/workspace.ts'
import { defaultSandboxes } from '../src/sandbox/defaults.ts'
import { resolveRuntime } from '../src/sandbox/runtime.ts'
import type { Sandbox } from '../src/sandbox/types.ts'
import { capsuleFile } from './helpers/capsule-file.ts'
import { tempWorkspaces } from './helpers/temp-workspace.ts'

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}
const shm = await memoryFsRoot(['/dev/shm'])
const workspace = tempWorkspaces('measured-bytes-test-')
const sandbox = defaultSandboxes().data as Sandbox

/** Opens a capsule of `data` into a run's plaintext file, as the executor does after the key release. */
async function opened(data: Uint8Array) {
  const { dir } = await workspace()
  const { src, dataKey } = await capsuleFile(dir, data)
  const ws = createRunWorkspace({ tmpRoot: tmpdir() })
  const loaded = { ...src, runtime: resolveRuntime(src.parsed.header.runtime) }
  const job = await openJob({
    loaded: loaded as never,
    sandbox,
    dataKey,
    workspace: ws,
    plaintextRoot: shm,
  })
  const path = job.inputFile?.path as string
  expect(path.startsWith(shm as string)).toBe(true)
  return { job, ws, path }
}

/** Runs the job with a lifecycle that records what was measured. */
async function run(o: Awaited<ReturnType<typeof opened>>) {
  const lifecycle = runLifecycle()
  const measured: Uint8Array[] = []
  lifecycle.on('after-load', ({ measurements }) => {
    measured.push(measurements.run)
  })
  const ran = await runInSandbox({ sandbox, job: o.job, workspace: o.ws, lifecycle }).catch(
    (e: unknown) => e,
  )
  return { ran, measured }
}

describe.runIf(shm)('the run measures the bytes it runs on (ADR 0055)', () => {
  it('40 MiB: the payload and run digests (v2, from the open’s leaves) equal ones computed apart', async () => {
    const data = randomBytes(40 * 1024 * 1024)
    const o = await opened(data)
    const { ran, measured } = await run(o)
    const r = ran as Awaited<ReturnType<typeof runInSandbox>>
    const payload = payloadDigest(data, DEFAULT_CHUNK_SIZE)
    const expected = sha256(
      new TextEncoder().encode('digicap/v2 run measurement'),
      runtimeDigest(sandbox.runtimeId, o.job.runtime),
      sha256(new Uint8Array(0)),
      payload,
    )
    expect(r.measurements.payload).toEqual(payload)
    expect(r.measurements.run).toEqual(expected)
    expect(measured).toEqual([expected])
    expect(existsSync(o.path)).toBe(false)
  })

  const changes: [string, (path: string) => Promise<void>][] = [
    ['truncated', (path) => truncate(path, 1000)],
    [
      'rewritten in place, same size',
      async (path) => {
        const fh = await open(path, 'r+')
        await fh.write(new Uint8Array(4096).fill(0x41), 0, 4096, 0)
        await fh.close()
      },
    ],
    [
      'replaced by another file',
      async (path) => {
        const other = join(dirname(path), 'other')
        await writeFile(other, randomBytes(1024 * 1024), { mode: 0o600 })
        await rename(other, path)
      },
    ],
  ]
  for (const [what, change] of changes) {
    it(`a plaintext file ${what} after the open: PAYLOAD_INTEGRITY, nothing measured, the file wiped`, async () => {
      const o = await opened(randomBytes(1024 * 1024))
      await change(o.path)
      const { ran, measured } = await run(o)
      expect(ran).toMatchObject({ code: 'PAYLOAD_INTEGRITY' })
      expect(measured).toEqual([])
      expect(existsSync(o.path)).toBe(false)
    })
  }
})
