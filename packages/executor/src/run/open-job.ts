/**
 * The open stage's result, a sandbox job: the payload streamed to the run's plaintext file on
 * a tmpfs when the sandbox reads files (ADR 0035), else opened into one buffer as before.
 */
import { decodeBundle } from '@digicap/capsule-core'
import { imageJob, jobFromBundle } from '../load/bundle.ts'
import { jobFromBundleFile } from '../load/bundle-file.ts'
import type { LoadedCapsule } from '../load/loader.ts'
import type { Sandbox, SandboxJob } from '../sandbox/types.ts'
import { memoryFsRoot, openPayloadToFile, openPayloadToMemory } from './open-payload.ts'
import type { RunWorkspace } from './workspace.ts'

export interface OpenJobParameters {
  readonly loaded: LoadedCapsule
  readonly sandbox: Sandbox
  readonly dataKey: Uint8Array
  readonly args?: readonly string[] | undefined
  /** Tracks the plaintext (file or buffer) for clean-up. */
  readonly workspace: RunWorkspace
  /** A tmpfs for the plaintext file; undefined: open into memory. */
  readonly plaintextRoot: string | undefined
}

/** Where a run's plaintext file may go: `plaintextRoot`, else `tmpRoot` or /dev/shm if tmpfs. */
export async function plaintextRootOf(init: {
  readonly plaintextRoot?: string | false | undefined
  readonly tmpRoot?: string | undefined
}): Promise<string | undefined> {
  if (init.plaintextRoot === false) return undefined
  return memoryFsRoot(
    init.plaintextRoot === undefined ? [init.tmpRoot, '/dev/shm'] : [init.plaintextRoot],
  )
}

/**
 * Whether {@link openJob} opens to a plaintext file (on capsule-core's worker lanes from
 * 32 MiB) rather than into memory: a memory file system at hand, a sandbox that reads its
 * input from a file, and not an image capsule.
 */
export function opensToFile(
  plaintextRoot: string | undefined,
  sandbox: Sandbox,
  runtime: LoadedCapsule['runtime'],
): plaintextRoot is string {
  return !!plaintextRoot && sandbox.readsInputFile === true && runtime.kind !== 'oci'
}

/**
 * @throws the opener's typed errors (`KEY_RELEASE_INVALID`, `PAYLOAD_INTEGRITY`) and
 *   `BundleFormatError` for a payload that is not a canonical bundle.
 */
export async function openJob(p: OpenJobParameters): Promise<SandboxJob> {
  const { loaded, dataKey, workspace } = p
  const { runtime } = loaded
  const { header } = loaded.parsed
  const src = {
    path: loaded.path,
    owner: header.owner,
    plaintextSize: header.payload.plaintextSize,
    parsed: loaded.parsed,
    verified: loaded.verified,
  }
  if (opensToFile(p.plaintextRoot, p.sandbox, runtime)) {
    // Made while the open checks the header and the key (awaited there).
    const dir = workspace.tempDir('plaintext-', p.plaintextRoot)
    const f = await openPayloadToFile(src, dataKey, { dir, workspace })
    if (runtime.kind !== 'data') {
      return jobFromBundleFile({
        runtime,
        path: f.path,
        fileSize: f.size,
        payloadDigest: f.payloadDigest,
        stamp: f.stamp,
        args: p.args,
      })
    }
    const inputFile = { path: f.path, offset: 0, size: f.size, stamp: f.stamp }
    const { payloadDigest } = f
    return {
      runtime,
      code: new Uint8Array(0),
      input: new Uint8Array(0),
      inputFile,
      payloadDigest,
      args: p.args,
    }
  }
  // Opened into memory only: the plaintext never touches the disk (the workspace holds the
  // ciphertext alone). Its size is the header's, already within the loader's limits.
  const plaintext = new Uint8Array(src.plaintextSize)
  workspace.trackBuffer(plaintext)
  const payloadDigest = await openPayloadToMemory(src, plaintext, dataKey)
  // Whatever the job makes of the plaintext, the run measures all of it (ADR 0059).
  return { ...jobOfPlaintext(p, plaintext), payloadDigest }
}

function jobOfPlaintext(p: OpenJobParameters, plaintext: Uint8Array): SandboxJob {
  const { runtime, parsed } = p.loaded
  if (runtime.kind === 'oci') {
    return imageJob(runtime, plaintext, parsed.header.capsuleId, p.dataKey, p.args)
  }
  if (runtime.kind === 'data') {
    return { runtime, code: new Uint8Array(0), input: plaintext, args: p.args }
  }
  return jobFromBundle(runtime, decodeBundle(plaintext), p.args)
}
