import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import {
  generateVectors,
  parseVector,
  VECTOR_DIR,
  VECTOR_DOMAIN,
} from '../scripts/generate-vectors.ts'
import {
  type AccessRequest,
  decodeAccessRequest,
  decodeAccessResponse,
  decodeErrorReply,
  decodeFrame,
  decodeKeyRelease,
  decodeReleaseAck,
  decodeResultAck,
  decodeResultDelivery,
  encodeAccessRequest,
  encodeAccessResponse,
  encodeErrorReply,
  encodeKeyRelease,
  encodeReleaseAck,
  encodeResultAck,
  encodeResultDelivery,
  recoverAccessRequestSigner,
} from '../src/index.ts'

// biome-ignore lint/suspicious/noExplicitAny: a table of codecs of different message types
const codecs: Record<string, [(b: Uint8Array) => any, (m: any) => Uint8Array]> = {
  'key-release': [decodeKeyRelease, encodeKeyRelease],
  'release-ack': [decodeReleaseAck, encodeReleaseAck],
  'access-request': [decodeAccessRequest, encodeAccessRequest],
  'access-response': [decodeAccessResponse, encodeAccessResponse],
  'result-delivery': [decodeResultDelivery, encodeResultDelivery],
  'result-ack': [decodeResultAck, encodeResultAck],
  error: [decodeErrorReply, encodeErrorReply],
}

const files = readdirSync(VECTOR_DIR).sort()

describe('test vectors', () => {
  it('match the generator byte for byte (no drift)', () => {
    const generated = generateVectors()
    expect(files).toEqual([...generated.keys()].sort())
    for (const name of files) {
      expect(readFileSync(join(VECTOR_DIR, name), 'utf8'), name).toBe(generated.get(name))
    }
  })

  it('cover valid and invalid cases', () => {
    const outcomes = files.map(
      (f) => parseVector(readFileSync(join(VECTOR_DIR, f), 'utf8')).header.expect,
    )
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThanOrEqual(10)
    for (const code of ['WIRE_FORMAT', 'WIRE_VERSION', 'WIRE_TOO_LARGE', 'WIRE_TRUNCATED']) {
      expect(outcomes).toContain(code)
    }
  })

  it.each(files)('%s decodes to its expected outcome', (file) => {
    const { header, frame } = parseVector(readFileSync(join(VECTOR_DIR, file), 'utf8'))
    const codec = codecs[header.type as string]
    expect(codec, `decoder for ${header.type}`).toBeDefined()
    const [decode, encode] = codec!
    const run = () => decode(decodeFrame(frame, Number(header['max-size'])))
    if (header.expect === 'ok') {
      const message = run()
      expect(encode(message)).toEqual(decodeFrame(frame, Number(header['max-size'])))
      if (header.signer?.startsWith('WIRE_')) {
        // The frame is well formed; its signature is one a Digicap reader refuses (SPEC §5.1).
        expect(() => recoverAccessRequestSigner(message as AccessRequest, VECTOR_DOMAIN)).toThrow(
          expect.objectContaining({ code: header.signer }),
        )
      } else if (header.signer !== undefined) {
        expect(recoverAccessRequestSigner(message as AccessRequest, VECTOR_DOMAIN)).toBe(
          header.signer,
        )
      }
      return
    }
    let caught: unknown
    try {
      run()
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(DigicapError)
    const err = caught as DigicapError
    expect(err.code).toBe(header.expect)
    if (header.field !== undefined) expect(err.details.field).toBe(header.field)
  })
})
