/**
 * Streaming seal and open, as Web `TransformStream`s and Node `Transform`s. Memory stays
 * bounded by about two chunks whatever the capsule size.
 */
import { Transform } from 'node:stream'
import { type OpenOptions, prepareOpen, prepareSeal, type SealParameters } from './capsule.ts'
import { concatBytes } from './encoding/bytes.ts'
import { CapsuleTruncatedError, InvalidArgumentError } from './errors.ts'
import { CAPSULE_PREAMBLE_LENGTH, CAPSULE_SIGNATURE_LENGTH } from './header.ts'
import { checkPreamble, type ParsedCapsuleHeader, parseCapsuleHeader } from './parse.ts'
import { ByteQueue, type PayloadOpener } from './payload.ts'

interface Machine {
  write(bytes: Uint8Array): Uint8Array[]
  end(): Uint8Array[]
  /** Called once on error or abort: wipe keys. */
  abort(reason?: unknown): void
}

function sealMachine(params: SealParameters): Machine {
  const { prefix, sealer, parsed } = prepareSeal(params)
  if (parsed.header.version !== 1) {
    sealer.destroy()
    throw new InvalidArgumentError('a version 2 capsule cannot be sealed as a stream', {
      details: { version: parsed.header.version },
      hint: 'Its tag table comes before the bodies: seal it with sealCapsule or a file sealer, or make a version 1 header.',
    })
  }
  let started = false
  const start = (out: Uint8Array[]) => {
    if (!started) {
      started = true
      out.unshift(prefix)
    }
    return out
  }
  return {
    write: (bytes) => start(sealer.write(bytes)),
    end: () => start(sealer.end()),
    abort: () => sealer.destroy(),
  }
}

function openMachine(options: OpenOptions, onHeader: (p: ParsedCapsuleHeader) => void): Machine {
  const head = new ByteQueue()
  let opener: PayloadOpener | undefined
  let needed = CAPSULE_PREAMBLE_LENGTH
  return {
    write(bytes) {
      if (opener) return opener.write(bytes)
      head.push(bytes)
      if (needed === CAPSULE_PREAMBLE_LENGTH) {
        const headerLength = checkPreamble(head.peek(CAPSULE_PREAMBLE_LENGTH))
        if (headerLength === undefined) return []
        needed = CAPSULE_PREAMBLE_LENGTH + headerLength + CAPSULE_SIGNATURE_LENGTH
      }
      if (head.length < needed) return []
      const prefix = concatBytes(...head.take(needed))
      const parsed = parseCapsuleHeader(prefix)
      opener = prepareOpen(parsed, options)
      onHeader(parsed)
      const rest = head.take(head.length)
      const out: Uint8Array[] = []
      for (const r of rest) out.push(...opener.write(r))
      return out
    },
    end() {
      if (!opener) {
        // Re-run the prefix checks on what arrived, so a bad magic still says so.
        if (head.length < CAPSULE_PREAMBLE_LENGTH) checkPreamble(head.peek(head.length))
        throw new CapsuleTruncatedError('capsule ends inside its preamble, header or signature', {
          details: { length: head.length, needed },
        })
      }
      opener.end()
      return []
    },
    abort() {
      opener?.destroy()
    },
  }
}

/**
 * Wipes keys on the first error and, for openers, rejects the header promise with it
 * (a no-op once the header has resolved).
 */
function guard(m: Machine, reject: (e: unknown) => void = () => {}): Machine {
  const fail = (err: unknown): never => {
    m.abort(err)
    reject(err)
    throw err
  }
  return {
    write(bytes) {
      try {
        return m.write(bytes)
      } catch (err) {
        return fail(err)
      }
    },
    end() {
      try {
        return m.end()
      } catch (err) {
        return fail(err)
      }
    },
    abort(reason) {
      m.abort(reason)
      reject(reason)
    },
  }
}

function webTransform(machine: () => Machine): TransformStream<Uint8Array, Uint8Array> {
  let m: Machine
  return new TransformStream<Uint8Array, Uint8Array>({
    start() {
      m = machine()
    },
    transform(chunk, controller) {
      if (!(chunk instanceof Uint8Array)) {
        // Through the machine's abort: keys are wiped and an opener's header promise rejects
        // (a caller awaiting `header` would otherwise wait for ever).
        const err = new InvalidArgumentError('stream chunks must be Uint8Array', {
          details: { type: Object.prototype.toString.call(chunk).slice(8, -1) },
          hint: 'Wrap an ArrayBuffer in a Uint8Array: new Uint8Array(buffer).',
        })
        m.abort(err)
        throw err
      }
      for (const o of m.write(chunk)) controller.enqueue(o)
    },
    flush(controller) {
      for (const o of m.end()) controller.enqueue(o)
    },
    cancel(reason) {
      m.abort(reason)
    },
  })
}

function nodeTransform(machine: Machine): Transform {
  return new Transform({
    destroy(err, cb) {
      if (err) machine.abort(err)
      cb(err)
    },
    transform(chunk: Uint8Array, _enc, cb) {
      try {
        for (const o of machine.write(chunk)) this.push(o)
        cb()
      } catch (err) {
        cb(err as Error)
      }
    },
    flush(cb) {
      try {
        for (const o of machine.end()) this.push(o)
        cb()
      } catch (err) {
        cb(err as Error)
      }
    },
  })
}

function headerPromise(): {
  promise: Promise<ParsedCapsuleHeader>
  resolve: (p: ParsedCapsuleHeader) => void
  reject: (e: unknown) => void
} {
  let resolve!: (p: ParsedCapsuleHeader) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<ParsedCapsuleHeader>((res, rej) => {
    resolve = res
    reject = rej
  })
  // The caller may never await it; a stream error must not become an unhandled rejection.
  promise.catch(() => {})
  return { promise, resolve, reject }
}

/**
 * A Web `TransformStream` that turns plaintext into capsule bytes. The header (with the
 * plaintext commitment, see `createPlaintextCommitment`) must be built before the stream starts.
 *
 * @throws {InvalidArgumentError} | {@link CapsuleSignatureError} synchronously for bad parameters;
 *   the stream errors with {@link InvalidArgumentError} if the plaintext size differs from the header.
 * @example
 * ```ts
 * await file.stream().pipeThrough(sealStream({ header, signature, dataKey })).pipeTo(sink)
 * ```
 */
export function sealStream(params: SealParameters): TransformStream<Uint8Array, Uint8Array> {
  const m = guard(sealMachine(params))
  return webTransform(() => m)
}

/** A Web transform that opens capsule bytes, with a promise of the verified header. */
export interface OpenStream {
  readable: ReadableStream<Uint8Array>
  writable: WritableStream<Uint8Array>
  /** Resolves once the header is parsed, signature-verified and the key checked. */
  header: Promise<ParsedCapsuleHeader>
}

/**
 * A Web transform that turns capsule bytes into plaintext: the header is parsed and verified
 * as soon as it has arrived, each chunk is released only after it authenticates, and the
 * last chunk only after the plaintext commitment checks. Treat the output as unverified
 * until the stream ends without error.
 *
 * @example
 * ```ts
 * const open = openStream({ dataKey })
 * const plain = response.body.pipeThrough(open)
 * console.log((await open.header).header.owner)
 * ```
 */
export function openStream(options: OpenOptions): OpenStream {
  const h = headerPromise()
  const ts = webTransform(() => guard(openMachine(options, h.resolve), h.reject))
  return { readable: ts.readable, writable: ts.writable, header: h.promise }
}

/**
 * A Node `Transform` that seals plaintext into capsule bytes (see {@link sealStream}).
 *
 * @example
 * ```ts
 * await pipeline(fs.createReadStream(src), sealNodeStream({ header, signature, dataKey }), fs.createWriteStream(dst))
 * ```
 */
export function sealNodeStream(params: SealParameters): Transform {
  return nodeTransform(guard(sealMachine(params)))
}

/**
 * A Node `Transform` that opens capsule bytes (see {@link openStream}); `header` resolves
 * with the verified header.
 *
 * @example
 * ```ts
 * const open = openNodeStream({ dataKey })
 * await pipeline(fs.createReadStream(capsulePath), open, fs.createWriteStream(out))
 * ```
 */
export function openNodeStream(
  options: OpenOptions,
): Transform & { header: Promise<ParsedCapsuleHeader> } {
  const h = headerPromise()
  const t = nodeTransform(guard(openMachine(options, h.resolve), h.reject)) as Transform & {
    header: Promise<ParsedCapsuleHeader>
  }
  t.on('close', () =>
    h.reject(new CapsuleTruncatedError('stream closed before the capsule header arrived')),
  )
  t.header = h.promise
  return t
}
