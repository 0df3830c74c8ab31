import { createHash } from 'node:crypto'
import { encode } from 'cborg'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeBundle, encodeBundle, payloadDigest, runtimeMeasurement } from '../src/index.ts'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

const bundle = {
  entry: 'main.js',
  files: { 'main.js': enc('digicap.output("x")') },
  data: enc('1,2'),
}
const catchCode = (f: () => unknown) => {
  try {
    f()
  } catch (e) {
    return e as { code: string; details: { reason: string } }
  }
  throw new Error('expected a throw')
}

describe('bundle format', () => {
  it('round-trips and is canonical (sorted keys, fixed vector)', () => {
    const bytes = encodeBundle(bundle)
    expect(decodeBundle(bytes)).toEqual(bundle)
    // Vector: the exact bytes of a minimal bundle (docs/bundle.md).
    const tiny = encodeBundle({
      entry: 'a',
      files: { a: new Uint8Array([1]) },
      data: new Uint8Array([2]),
    })
    expect(Buffer.from(tiny).toString('hex')).toBe(
      'a4617601646461746141026565' + '6e74727961616566696c6573a161614101',
    )
  })

  it.each([
    [
      'unknown key',
      { v: 1, entry: 'a', files: { a: new Uint8Array(1) }, data: new Uint8Array(0), x: 1 },
      'unexpected keys',
    ],
    ['missing key', { v: 1, entry: 'a', files: { a: new Uint8Array(1) } }, 'unexpected keys'],
    [
      'version 2',
      { v: 2, entry: 'a', files: { a: new Uint8Array(1) }, data: new Uint8Array(0) },
      'unsupported version',
    ],
    [
      'entry not a file',
      { v: 1, entry: 'b', files: { a: new Uint8Array(1) }, data: new Uint8Array(0) },
      'entry is not one of the files',
    ],
    [
      'dot-dot name',
      {
        v: 1,
        entry: 'a',
        files: { a: new Uint8Array(1), '../x': new Uint8Array(1) },
        data: new Uint8Array(0),
      },
      'file name has a . or .. segment',
    ],
    [
      'absolute name',
      {
        v: 1,
        entry: 'a',
        files: { a: new Uint8Array(1), '/etc/x': new Uint8Array(1) },
        data: new Uint8Array(0),
      },
      'bad file name',
    ],
    [
      'text file content',
      { v: 1, entry: 'a', files: { a: 'code' }, data: new Uint8Array(0) },
      'file content must be bytes',
    ],
    [
      'data as text',
      { v: 1, entry: 'a', files: { a: new Uint8Array(1) }, data: 'x' },
      'data must be bytes',
    ],
    [
      'no files',
      { v: 1, entry: 'a', files: {}, data: new Uint8Array(0) },
      'file count out of range',
    ],
    ['array top level', [1, 2], 'top level must be a map'],
  ])('rejects %s with BUNDLE_FORMAT', (_n, value, reason) => {
    const err = catchCode(() => decodeBundle(encode(value)))
    expect(err.code).toBe('BUNDLE_FORMAT')
    expect(err.details.reason).toBe(reason)
  })

  it('rejects non-canonical, indefinite, duplicate-key, trailing and oversized input', () => {
    const bytes = encodeBundle(bundle)
    const cases: Array<[Uint8Array, string]> = [
      [new Uint8Array([...bytes, 0]), 'not valid canonical CBOR'],
      [bytes.subarray(0, bytes.length - 1), 'not valid canonical CBOR'],
      // map(4) written with a 1-byte length argument: not the shortest form
      [new Uint8Array([0xb8, 0x04, ...bytes.subarray(1)]), 'not valid canonical CBOR'],
      // indefinite-length map
      [new Uint8Array([0xbf, ...bytes.subarray(1), 0xff]), 'not valid canonical CBOR'],
    ]
    for (const [b, reason] of cases) {
      const err = catchCode(() => decodeBundle(b))
      expect(err.code).toBe('BUNDLE_FORMAT')
      expect(err.details.reason).toBe(reason)
    }
    // the tiny vector with "data" before "v": same content, keys out of canonical order
    const unsorted = Buffer.from(
      'a4' + '6464617461' + '4102' + '617601' + '65656e74727961616566696c6573a161614101',
      'hex',
    )
    const e = catchCode(() => decodeBundle(new Uint8Array(unsorted)))
    expect(e.code).toBe('BUNDLE_FORMAT')
    const dup = new Uint8Array([0xa2, 0x61, 0x76, 0x01, 0x61, 0x76, 0x01])
    expect(catchCode(() => decodeBundle(dup)).details.reason).toBe('not valid canonical CBOR')
    expect(catchCode(() => decodeBundle(bytes, { maxBytes: 8 })).details.reason).toBe(
      'bundle too large',
    )
  })

  it('the reserved name __proto__ is refused both ways', () => {
    // JSON.parse makes "__proto__" an own property, as a decoder would.
    const files = JSON.parse('{"a": 0, "__proto__": 0}') as Record<string, unknown>
    files.a = new Uint8Array(1)
    Object.defineProperty(files, '__proto__', { value: new Uint8Array(1), enumerable: true })
    const encErr = catchCode(() =>
      encodeBundle({ entry: 'a', files: files as never, data: new Uint8Array(0) }),
    )
    expect(encErr.details.reason).toBe('reserved file name')
    const bytes = encode({ v: 1, data: new Uint8Array(0), entry: 'a', files })
    expect(catchCode(() => decodeBundle(bytes)).code).toBe('BUNDLE_FORMAT')
  })

  it('encodeBundle refuses bad bundles with BUNDLE_FORMAT', () => {
    expect(catchCode(() => encodeBundle({ ...bundle, entry: 'other.js' })).code).toBe(
      'BUNDLE_FORMAT',
    )
    expect(
      catchCode(() =>
        encodeBundle({
          ...bundle,
          files: { __proto__x: new Uint8Array(0), 'a b': new Uint8Array(0) } as never,
        }),
      ).code,
    ).toBe('BUNDLE_FORMAT')
  })

  it('fuzz: random bytes never decode to anything but a bundle or BUNDLE_FORMAT', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        try {
          decodeBundle(b)
        } catch (e) {
          expect((e as { code: string }).code).toBe('BUNDLE_FORMAT')
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('fuzz: mutated valid bundles fail typed or decode to a valid bundle', () => {
    const bytes = encodeBundle(bundle)
    fc.assert(
      fc.property(fc.nat(bytes.length - 1), fc.integer({ min: 0, max: 255 }), (i, v) => {
        const m = bytes.slice()
        m[i] = v
        try {
          const d = decodeBundle(m)
          expect(encodeBundle(d)).toEqual(m)
        } catch (e) {
          expect((e as { code: string }).code).toBe('BUNDLE_FORMAT')
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('fuzz: any valid bundle round-trips', () => {
    // `__proto__` is a reserved name (docs/bundle.md §3): decodeBundle rejects it.
    const name = fc
      .stringMatching(/^[a-z0-9_-]{1,12}(\.[a-z]{1,3})?$/)
      .filter((n) => n !== '__proto__')
    fc.assert(
      fc.property(
        fc.dictionary(name, fc.uint8Array({ maxLength: 32 }), { minKeys: 1, maxKeys: 5 }),
        fc.uint8Array({ maxLength: 64 }),
        (files, data) => {
          const entry = Object.keys(files)[0]!
          const b = { entry, files, data }
          expect(decodeBundle(encodeBundle(b))).toEqual(b)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('run measurement: the docs/bundle.md §7 vector (version 2), recomputed by hand', () => {
    const runtime = { kind: 'quickjs', entry: 'main.js', memoryLimitBytes: 1024, timeLimitMs: 10 }
    const v = runtimeMeasurement({
      runtimeId: 'vector',
      runtime,
      code: new Uint8Array(0),
      input: new Uint8Array(0),
      chunkSize: 1024 * 1024,
    })
    expect(v.version).toBe(2)
    expect(Buffer.from(v.run).toString('hex')).toBe(
      'f935437bd288ade077460ee1bbdcf69a82ff474738ab20ea0d159f6d2af83051',
    )
    const sha = (...p: (Uint8Array | string)[]) => {
      const h = createHash('sha256')
      for (const x of p) h.update(x)
      return h.digest()
    }
    // payload: the empty payload is one empty chunk (SPEC.md §4.3)
    const sizes = Buffer.from('00100000' + '0000000000000000', 'hex')
    const payload = sha('digicap/v2 payload digest chunked sha256', sizes, sha(''))
    expect(Buffer.from(v.payload)).toEqual(payload)
    expect(Buffer.from(v.run)).toEqual(
      sha('digicap/v2 run measurement', v.runtime, sha(''), payload),
    )
    // Version 1 was SHA-256(runtime ‖ code ‖ SHA-256(data)): a value version 2 never takes.
    expect(Buffer.from(v.run).toString('hex')).not.toBe(
      '21899ebcf7272d5f0bffc75849c4937f8dd06ca1fbabf4a7e9c497d215c4bbec',
    )
  })

  it('run measurement from a payload digest equals the one from the payload; one of the two only', () => {
    const runtime = { kind: 'wasi', entry: 'main.wasm', memoryLimitBytes: 1 << 20, timeLimitMs: 50 }
    const code = new Uint8Array([1, 2, 3])
    const input = new Uint8Array(1000).fill(7)
    const digest = payloadDigest(input, 256)
    const a = runtimeMeasurement({ runtimeId: 'x', runtime, code, input, chunkSize: 256 })
    const b = runtimeMeasurement({ runtimeId: 'x', runtime, code, payloadDigest: digest })
    expect(b).toEqual(a)
    // the chunk size is measured: another one, another payload digest
    expect(
      runtimeMeasurement({ runtimeId: 'x', runtime, code, input, chunkSize: 512 }).run,
    ).not.toEqual(a.run)
    expect(() => runtimeMeasurement({ runtimeId: 'x', runtime, code })).toThrow(/exactly one/)
    expect(() =>
      runtimeMeasurement({ runtimeId: 'x', runtime, code, input, payloadDigest: digest }),
    ).toThrow(/exactly one/)
    expect(() => runtimeMeasurement({ runtimeId: 'x', runtime, code, input })).toThrow(/chunkSize/)
    expect(() =>
      runtimeMeasurement({ runtimeId: 'x', runtime, code, payloadDigest: digest.subarray(1) }),
    ).toThrow(/32 bytes/)
  })
})
