/**
 * File-to-file sealing and opening: the fast, constant-memory path for local files.
 *
 * Reads go into two reused chunk buffers (the next read runs while the current chunk is
 * encrypted), and every cipher output is released as soon as it is written, so memory does
 * not grow with the file and does not wait for the garbage collector. Output is written to a
 * temporary file next to the target and renamed into place only on success, so a failure
 * never leaves a half-written capsule or unverified plaintext behind.
 */

import { randomBytes } from 'node:crypto'
import { constants, type FileHandle, open, rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { concatBytes } from './bytes.ts'
import { type OpenOptions, prepareOpen, prepareSeal, type SealParameters } from './capsule.ts'
import { CapsuleTruncatedError, InvalidArgumentError } from './errors.ts'
import { CAPSULE_PREAMBLE_LENGTH, CAPSULE_SIGNATURE_LENGTH, CHUNK_TAG_LENGTH } from './header.ts'
import { createPlaintextCommitment } from './keys.ts'
import {
  checkPreamble,
  chunkPlaintextLength,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
} from './parse.ts'
import { encryptChunk } from './payload.ts'

/** Frees a buffer's memory now instead of at the next garbage collection. */
function release(buffers: Uint8Array[]): void {
  for (const b of buffers) {
    // Only buffers that own their whole ArrayBuffer (cipher outputs) are released.
    const ab = b.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer }
    if (b.byteOffset === 0 && b.byteLength === ab.byteLength && typeof ab.transfer === 'function')
      ab.transfer(0)
  }
}

async function readFully(
  fh: FileHandle,
  buf: Uint8Array,
  length: number,
  position: number,
): Promise<number> {
  let got = 0
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got)
    if (bytesRead === 0) break
    got += bytesRead
  }
  return got
}

interface Target {
  fh: FileHandle
  commit(): Promise<void>
  abort(): Promise<void>
}

/** Opens `path` for writing: via a temp file + rename for regular files, directly otherwise (e.g. /dev/null). */
async function openTarget(path: string): Promise<Target> {
  const existing = await stat(path).catch(() => undefined)
  if (existing && !existing.isFile()) {
    const fh = await open(path, 'w')
    return { fh, commit: () => fh.close(), abort: () => fh.close() }
  }
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`)
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  return {
    fh,
    async commit() {
      await fh.sync()
      await fh.close()
      await rename(tmp, path)
    },
    async abort() {
      await fh.close().catch(() => {})
      await unlink(tmp).catch(() => {})
    },
  }
}

/**
 * Seals the file at `input` into a capsule at `output`. The header (see
 * `createPlaintextCommitment` / {@link commitPlaintextFile}) must describe this file.
 *
 * @throws {InvalidArgumentError} if the file size differs from the header, or the key or signature do not match.
 * @throws {CapsuleSignatureError} if the signature is not the owner's.
 * @throws Node's file system errors (ENOENT, EACCES, ENOSPC, …) unchanged.
 * @example
 * ```ts
 * const commitment = await commitPlaintextFile('data.bin', dataKey, capsuleId)
 * const header = createCapsuleHeader({ ...fields, capsuleId, dataKey, commitment })
 * await sealFile({ header, signature, dataKey, input: 'data.bin', output: 'data.capsule' })
 * ```
 */
export async function sealFile(
  params: SealParameters & { input: string; output: string },
): Promise<ParsedCapsuleHeader> {
  const { prefix, parsed, payloadKey } = prepareSeal(params)
  const { chunkSize, plaintextSize } = parsed.header.payload
  const src = await open(params.input, 'r')
  let target: Target | undefined
  try {
    const { size } = await src.stat()
    if (size !== plaintextSize) {
      throw new InvalidArgumentError('input file size differs from header.payload.plaintextSize', {
        details: { size, plaintextSize },
      })
    }
    target = await openTarget(params.output)
    await target.fh.write(prefix)
    const bufs = [new Uint8Array(chunkSize), new Uint8Array(chunkSize)]
    const n = parsed.chunkCount
    let next = readFully(src, bufs[0] as Uint8Array, chunkPlaintextLength(parsed.header, 0), 0)
    let pendingWrite: Promise<unknown> = Promise.resolve()
    let pendingOut: Uint8Array[] = []
    for (let i = 0; i < n; i++) {
      const len = chunkPlaintextLength(parsed.header, i)
      const got = await next
      if (got !== len)
        throw new InvalidArgumentError('input file changed while sealing', {
          details: { chunk: i },
        })
      const buf = bufs[i % 2] as Uint8Array
      if (i + 1 < n) {
        next = readFully(
          src,
          bufs[(i + 1) % 2] as Uint8Array,
          chunkPlaintextLength(parsed.header, i + 1),
          (i + 1) * chunkSize,
        )
      }
      const out = encryptChunk(payloadKey, parsed.headerHash, i, i === n - 1, [
        buf.subarray(0, len),
      ])
      await pendingWrite
      release(pendingOut)
      pendingOut = out
      pendingWrite = target.fh.writev(out)
    }
    await pendingWrite
    release(pendingOut)
    await target.commit()
    target = undefined
    return parsed
  } finally {
    payloadKey.fill(0)
    await src.close()
    if (target) await target.abort()
  }
}

/**
 * Opens the capsule file at `input` and writes its plaintext to `output`. The plaintext
 * appears at `output` only if the whole capsule verified (signature, key, every chunk, the
 * plaintext commitment); when `output` is a device such as /dev/null it is written as it goes.
 *
 * @throws the same typed errors as `openCapsule`, and Node's file system errors unchanged.
 * @example
 * ```ts
 * const parsed = await openFile({ input: 'data.capsule', output: 'data.bin', dataKey })
 * ```
 */
export async function openFile(
  options: OpenOptions & { input: string; output: string },
): Promise<ParsedCapsuleHeader> {
  const src = await open(options.input, 'r')
  let target: Target | undefined
  try {
    const pre = new Uint8Array(CAPSULE_PREAMBLE_LENGTH)
    const preLen = await readFully(src, pre, pre.length, 0)
    const headerLength = checkPreamble(pre.subarray(0, preLen))
    if (headerLength === undefined) {
      throw new CapsuleTruncatedError('capsule ends inside its preamble', {
        details: { length: preLen },
      })
    }
    const rest = new Uint8Array(headerLength + CAPSULE_SIGNATURE_LENGTH)
    const restLen = await readFully(src, rest, rest.length, CAPSULE_PREAMBLE_LENGTH)
    const parsed = parseCapsuleHeader(concatBytes(pre, rest.subarray(0, restLen)))
    const opener = prepareOpen(parsed, options)
    target = await openTarget(options.output)
    const { chunkSize } = parsed.header.payload
    const size = (i: number) => chunkPlaintextLength(parsed.header, i) + CHUNK_TAG_LENGTH
    const at = (i: number) => parsed.payloadOffset + i * (chunkSize + CHUNK_TAG_LENGTH)
    const bufs = [
      new Uint8Array(chunkSize + CHUNK_TAG_LENGTH),
      new Uint8Array(chunkSize + CHUNK_TAG_LENGTH),
    ]
    const n = parsed.chunkCount
    let next = readFully(src, bufs[0] as Uint8Array, size(0), at(0))
    let pendingWrite: Promise<unknown> = Promise.resolve()
    let pendingOut: Uint8Array[] = []
    for (let i = 0; i < n; i++) {
      const got = await next
      const buf = bufs[i % 2] as Uint8Array
      if (i + 1 < n && got === size(i))
        next = readFully(src, bufs[(i + 1) % 2] as Uint8Array, size(i + 1), at(i + 1))
      // The opener consumes exactly one chunk per call, so it keeps no reference to `buf`.
      const out = opener.write(buf.subarray(0, got))
      if (got < size(i)) opener.end()
      await pendingWrite
      release(pendingOut)
      pendingOut = out
      pendingWrite = target.fh.writev(out)
    }
    const extra = new Uint8Array(1)
    if ((await readFully(src, extra, 1, at(n - 1) + size(n - 1))) > 0) opener.write(extra)
    opener.end()
    await pendingWrite
    release(pendingOut)
    await target.commit()
    target = undefined
    return parsed
  } finally {
    await src.close()
    if (target) await target.abort()
  }
}

/**
 * Computes the plaintext commitment of a file (the first of the two passes a sealed file
 * needs; see SPEC.md §4.3), reading it in 1 MiB pieces into one reused buffer.
 *
 * @example
 * ```ts
 * const commitment = await commitPlaintextFile('data.bin', dataKey, capsuleId)
 * ```
 */
export async function commitPlaintextFile(
  path: string,
  dataKey: Uint8Array,
  capsuleId: Uint8Array,
): Promise<{ plaintextSize: number; plaintextCommitment: Uint8Array }> {
  const c = createPlaintextCommitment(dataKey, capsuleId)
  const fh = await open(path, 'r')
  try {
    const buf = new Uint8Array(1024 * 1024)
    for (let pos = 0; ; ) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
      if (bytesRead === 0) break
      c.update(buf.subarray(0, bytesRead))
      pos += bytesRead
    }
    return c.digest()
  } finally {
    await fh.close()
  }
}
