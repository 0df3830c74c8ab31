/**
 * Every reader of a capsule, each turning its result into one {@link Outcome}: the tests that
 * require the readers to agree (the vectors of both versions, format version 2's own) use
 * these, so they all open a capsule the same ways.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { DigicapError, openCapsule, openFile, openNodeStream, openStream } from '../src/index.ts'

/** What a reader gave: the plaintext, or the typed error's code and `details.reason`. */
export type Outcome =
  | { ok: true; plaintext: Uint8Array }
  | { ok: false; code: string; reason?: unknown }

function outcomeOf(err: unknown): Outcome {
  if (!(err instanceof DigicapError)) throw err
  const reason = err.details?.reason
  return reason === undefined
    ? { ok: false, code: err.code }
    : { ok: false, code: err.code, reason }
}

export async function viaBuffer(capsule: Uint8Array, dataKey: Uint8Array): Promise<Outcome> {
  try {
    return { ok: true, plaintext: openCapsule(capsule, { dataKey }).plaintext }
  } catch (err) {
    return outcomeOf(err)
  }
}

/**
 * The Web stream, fed in `pieceSize`-byte pieces (7 by default) so every parser boundary
 * (preamble, header, signature, each tag, each chunk or body) is crossed mid-piece.
 */
export async function viaWebStream(
  capsule: Uint8Array,
  dataKey: Uint8Array,
  pieceSize = 7,
): Promise<Outcome> {
  const pieces: Uint8Array[] = []
  for (let i = 0; i < capsule.length; i += pieceSize) pieces.push(capsule.slice(i, i + pieceSize))
  const out: Uint8Array[] = []
  try {
    await ReadableStream.from(pieces)
      .pipeThrough(openStream({ dataKey }))
      .pipeTo(new WritableStream({ write: (c) => void out.push(c) }))
    return { ok: true, plaintext: Buffer.concat(out) }
  } catch (err) {
    return outcomeOf(err)
  }
}

export async function viaNodeStream(capsule: Uint8Array, dataKey: Uint8Array): Promise<Outcome> {
  const out: Uint8Array[] = []
  try {
    await pipeline(
      Readable.from([capsule.subarray(0, 100), capsule.subarray(100)]),
      openNodeStream({ dataKey }),
      new Writable({
        write(c, _e, cb) {
          out.push(c)
          cb()
        },
      }),
    )
    return { ok: true, plaintext: Buffer.concat(out) }
  } catch (err) {
    return outcomeOf(err)
  }
}

/**
 * `openFile` on a copy written to `dir`, with its default threads, or `threads` 1 (the calling
 * thread) or 2 (lanes). A failure must leave nothing of the output behind (else it throws).
 */
export async function viaFile(
  dir: string,
  name: string,
  capsule: Uint8Array,
  dataKey: Uint8Array,
  threads?: number,
): Promise<Outcome> {
  const label = `${name}.${threads ?? 'default'}`
  const input = join(dir, `${label}.capsule`)
  const output = join(dir, `${label}.out`)
  writeFileSync(input, capsule)
  try {
    await openFile({ input, output, dataKey, ...(threads === undefined ? {} : { threads }) })
    return { ok: true, plaintext: readFileSync(output) }
  } catch (err) {
    const left = readdirSync(dir).filter((f) => f.includes(`${label}.out`))
    if (left.length > 0) throw new Error(`a failed openFile left ${left.join(', ')}`)
    return outcomeOf(err)
  }
}
