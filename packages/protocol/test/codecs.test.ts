import { DigicapError, InvalidArgumentError } from '@digicap/capsule-core'
import { encode } from 'cborg'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  decodeAccessRequest,
  decodeAccessResponse,
  decodeErrorReply,
  decodeFrame,
  decodeKeyRelease,
  decodeMessage,
  decodeReleaseAck,
  decodeResultAck,
  decodeResultDelivery,
  encodeAccessRequest,
  encodeAccessResponse,
  encodeErrorReply,
  encodeFrame,
  encodeKeyRelease,
  encodeReleaseAck,
  encodeResultAck,
  encodeResultDelivery,
  MAX_CONTROL_FRAME,
  resultAad,
  WireFormatError,
  WireVersionError,
} from '../src/index.ts'
import * as arb from './arbitraries.ts'

// biome-ignore lint/suspicious/noExplicitAny: a table of codecs of different message types
type Codec = [string, fc.Arbitrary<any>, (m: any) => Uint8Array, (b: Uint8Array) => any]
const codecs: Codec[] = [
  ['key-release', arb.keyRelease, encodeKeyRelease, decodeKeyRelease],
  ['release-ack', arb.releaseAck, encodeReleaseAck, decodeReleaseAck],
  ['access-request', arb.accessRequest, encodeAccessRequest, decodeAccessRequest],
  ['access-response', arb.accessResponse, encodeAccessResponse, decodeAccessResponse],
  ['result-delivery', arb.resultDelivery, encodeResultDelivery, decodeResultDelivery],
  ['result-ack', arb.resultAck, encodeResultAck, decodeResultAck],
  ['error', arb.errorReply, encodeErrorReply, decodeErrorReply],
]
const decoders = [...codecs.map((c) => c[3]), decodeMessage]

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof DigicapError) return err.code
    throw err
  }
  return undefined
}

describe('codecs', () => {
  it.each(codecs)('%s: decode(encode(m)) = m and encode(decode(b)) = b', (type, a, enc, dec) => {
    fc.assert(
      fc.property(a, (m) => {
        const body = enc(m)
        const back = dec(body)
        expect(back).toEqual(m)
        expect(enc(back)).toEqual(body)
        expect(decodeMessage(body)).toEqual({ type, message: m })
        // decoded byte fields are plain, unaliased Uint8Arrays
        for (const v of Object.values(back as object)) {
          if (v instanceof Uint8Array) expect(Object.getPrototypeOf(v)).toBe(Uint8Array.prototype)
        }
      }),
      { numRuns: 100 },
    )
  })

  it.each(
    codecs,
  )('%s: each decoder refuses the other types (WIRE_FORMAT field t, or WIRE_VERSION across versions)', (type, a, enc) => {
    const body = enc(fc.sample(a, 1)[0])
    const v2 = (t: string): boolean => t.startsWith('result-')
    for (const [other, , , dec] of codecs) {
      if (other === type) continue
      let err: unknown
      try {
        dec(body)
      } catch (e) {
        err = e
      }
      if (v2(other) !== v2(type)) {
        expect(err).toBeInstanceOf(WireVersionError)
        continue
      }
      expect(err).toBeInstanceOf(WireFormatError)
      expect((err as WireFormatError).details.field).toBe('t')
    }
  })

  it('random bytes never throw anything but a DigicapError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        for (const dec of decoders) {
          try {
            dec(bytes)
          } catch (err) {
            expect(err).toBeInstanceOf(DigicapError)
            expect(['WIRE_FORMAT', 'WIRE_VERSION']).toContain((err as DigicapError).code)
          }
        }
      }),
      { numRuns: 500 },
    )
  })

  it('mutated valid messages either decode to a message that re-encodes identically or throw a DigicapError', () => {
    const anyMessage = fc.oneof(...codecs.map(([, a, enc]) => a.map((m) => enc(m) as Uint8Array)))
    fc.assert(
      fc.property(
        anyMessage,
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.constantFrom('flip', 'truncate', 'append'),
        (body, at, value, how) => {
          let mutated: Uint8Array
          const i = at % body.length
          if (how === 'flip') {
            mutated = body.slice()
            mutated[i] = value
          } else if (how === 'truncate') mutated = body.slice(0, i)
          else mutated = Uint8Array.from([...body, value])
          try {
            const { type, message } = decodeMessage(mutated)
            const enc = codecs.find((c) => c[0] === type)![2]
            expect(enc(message)).toEqual(mutated)
          } catch (err) {
            expect(err).toBeInstanceOf(DigicapError)
          }
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('random CBOR maps never throw anything but a DigicapError', () => {
    const value = fc.oneof(
      fc.integer(),
      fc.boolean(),
      fc.string({ maxLength: 20 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.constantFrom(1, 2, 'key-release', 'access-response', 'granted', 'refused', 'ok'),
    )
    const keys = fc.constantFrom(
      'v',
      't',
      'grantId',
      'capsuleId',
      'hpke',
      'fastPath',
      'status',
      'reasonCode',
      'keyRelease',
      'runId',
      'resultCid',
      'code',
      'x',
    )
    fc.assert(
      fc.property(fc.dictionary(keys, value, { maxKeys: 8 }), (obj) => {
        const body = encode(obj)
        for (const dec of decoders) {
          try {
            dec(body)
          } catch (err) {
            expect(err).toBeInstanceOf(DigicapError)
          }
        }
      }),
      { numRuns: 500 },
    )
  })

  it('deeply nested CBOR is a WIRE_FORMAT error, not a crash', () => {
    const deep = new Uint8Array(MAX_CONTROL_FRAME).fill(0x81) // [[[[…
    for (const dec of decoders) expect(codeOf(() => dec(deep))).toBe('WIRE_FORMAT')
    const deepMaps = new Uint8Array(MAX_CONTROL_FRAME)
    for (let i = 0; i + 3 < deepMaps.length; i += 3) deepMaps.set([0xa1, 0x61, 0x76], i)
    expect(codeOf(() => decodeMessage(deepMaps))).toBe('WIRE_FORMAT')
  })

  it('rejects an unknown version with WIRE_VERSION before looking at fields', () => {
    expect(() => decodeKeyRelease(encode({ v: 2, t: 'key-release', anything: 1 }))).toThrow(
      WireVersionError,
    )
    expect(codeOf(() => decodeMessage(encode({ v: 0, t: 'error', code: 'format' })))).toBe(
      'WIRE_VERSION',
    )
    expect(codeOf(() => decodeMessage(encode({ v: 1, t: 'hello' })))).toBe('WIRE_FORMAT')
    // result messages are v 2 (/digicap/result/2.0.0); their v 1 is refused as a version
    expect(codeOf(() => decodeMessage(encode({ v: 1, t: 'result-ack', x: 1 })))).toBe(
      'WIRE_VERSION',
    )
    expect(codeOf(() => decodeMessage(encode({ v: 2, t: 'key-release', x: 1 })))).toBe(
      'WIRE_VERSION',
    )
  })

  it('checks the inline key release of a granted response', () => {
    const grantId = new Uint8Array(32).fill(7)
    const kr = { grantId, capsuleId: new Uint8Array(32), hpke: new Uint8Array(80), fastPath: true }
    const inner = { v: 1, t: 'key-release', ...kr }
    const base = { v: 1, t: 'access-response', status: 'granted', grantId }
    expect(decodeAccessResponse(encode({ ...base, keyRelease: inner }))).toEqual({
      status: 'granted',
      grantId,
      keyRelease: kr,
    })
    for (const bad of [
      { ...inner, v: 2 },
      { ...inner, t: 'release-ack' },
      { ...inner, fastPath: false },
      { ...inner, grantId: new Uint8Array(32) },
      { ...inner, extra: 1 },
      new Uint8Array(3),
    ]) {
      const code = codeOf(() => decodeAccessResponse(encode({ ...base, keyRelease: bad })))
      expect(code === 'WIRE_FORMAT' || code === 'WIRE_VERSION').toBe(true)
    }
    expect(
      codeOf(() => decodeAccessResponse(encode({ ...base, keyRelease: { ...inner, v: 2 } }))),
    ).toBe('WIRE_VERSION')
    // refusal fields do not belong on a grant, and the other way round
    expect(codeOf(() => decodeAccessResponse(encode({ ...base, reasonCode: 'busy' })))).toBe(
      'WIRE_FORMAT',
    )
    expect(
      codeOf(() =>
        decodeAccessResponse(
          encode({ v: 1, t: 'access-response', status: 'refused', reasonCode: 'busy', grantId }),
        ),
      ),
    ).toBe('WIRE_FORMAT')
  })

  it('encoders refuse bad input with INVALID_ARGUMENT and name the field', () => {
    const good = fc.sample(arb.keyRelease, 1)[0]!
    let err: unknown
    try {
      encodeKeyRelease({ ...good, grantId: new Uint8Array(31) })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(InvalidArgumentError)
    expect((err as InvalidArgumentError).details.field).toBe('grantId')
    expect(() => encodeKeyRelease({ ...good, hpke: new Uint8Array(79) })).toThrow(
      InvalidArgumentError,
    )
    expect(() => encodeReleaseAck({ grantId: good.grantId, status: 'fine' as 'ok' })).toThrow(
      InvalidArgumentError,
    )
    expect(() =>
      encodeAccessRequest({ ...fc.sample(arb.accessRequest, 1)[0]!, expiry: 1n << 64n }),
    ).toThrow(InvalidArgumentError)
    expect(() =>
      encodeAccessRequest({
        ...fc.sample(arb.accessRequest, 1)[0]!,
        expiry: 5 as unknown as bigint,
      }),
    ).toThrow(InvalidArgumentError)
    const mismatch = (() => {
      try {
        encodeAccessRequest({
          ...fc.sample(arb.accessRequest, 1)[0]!,
          jobParams: new Uint8Array([1]),
        })
      } catch (err) {
        return err as InvalidArgumentError
      }
    })()
    expect(mismatch).toBeInstanceOf(InvalidArgumentError)
    expect(mismatch?.details).toMatchObject({ field: 'jobParamsHash', reason: 'mismatch' })
    expect(() =>
      encodeAccessResponse({ status: 'refused', reasonCode: 'busy', reason: 'é'.repeat(129) }),
    ).toThrow(InvalidArgumentError)
    expect(() =>
      encodeResultDelivery({
        runId: good.grantId,
        capsuleId: good.grantId,
        grantId: good.grantId,
        executor: new Uint8Array(20),
        receiverKey: good.grantId,
        measurement: good.grantId,
        runMeasurement: good.grantId,
        resultHash: good.grantId,
        resultSize: 48,
        signature: new Uint8Array(65),
        hpke: new Uint8Array(48),
        resultCid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
      } as never),
    ).toThrow(InvalidArgumentError)
    expect(() => encodeResultAck(null as never)).toThrow(InvalidArgumentError)
    expect(() => encodeErrorReply({ code: 'nope' as 'format' })).toThrow(InvalidArgumentError)
  })

  it('resultAad is runId || capsuleId || grantId', () => {
    const ids = {
      runId: new Uint8Array(32).fill(1),
      capsuleId: new Uint8Array(32).fill(2),
      grantId: new Uint8Array(32).fill(3),
    }
    const aad = resultAad(ids)
    expect(aad.length).toBe(96)
    expect([aad[0], aad[32], aad[64]]).toEqual([1, 2, 3])
    expect(() => resultAad({ ...ids, runId: new Uint8Array(3) })).toThrow(InvalidArgumentError)
  })
})

describe('frames', () => {
  it('encodeFrame/decodeFrame round-trip any body up to the limit', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20_000 }), (body) => {
        expect(decodeFrame(encodeFrame(body), MAX_CONTROL_FRAME)).toEqual(body)
      }),
      { numRuns: 50 },
    )
  })

  it('random bytes as a frame throw only typed wire errors', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.integer({ min: 1, max: 100 }),
        (bytes, max) => {
          try {
            decodeFrame(bytes, max)
          } catch (err) {
            expect(err).toBeInstanceOf(DigicapError)
            expect(['WIRE_FORMAT', 'WIRE_TOO_LARGE', 'WIRE_TRUNCATED']).toContain(
              (err as DigicapError).code,
            )
          }
        },
      ),
    )
  })

  it('enforces the limit on both sides', () => {
    expect(codeOf(() => encodeFrame(new Uint8Array(11), 10))).toBe('WIRE_TOO_LARGE')
    expect(codeOf(() => decodeFrame(encodeFrame(new Uint8Array(11)), 10))).toBe('WIRE_TOO_LARGE')
    expect(
      codeOf(() =>
        decodeFrame(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])),
      ),
    ).toBe('WIRE_TOO_LARGE')
    expect(codeOf(() => decodeFrame(new Uint8Array([0x80])))).toBe('WIRE_TRUNCATED')
    expect(codeOf(() => decodeFrame(new Uint8Array([])))).toBe('WIRE_TRUNCATED')
    expect(codeOf(() => decodeFrame(new Uint8Array([0x81, 0x00, 0x01])))).toBe('WIRE_FORMAT')
  })
})
