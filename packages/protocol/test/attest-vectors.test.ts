/**
 * `/digicap/attest/1.0.0` vectors: the files match the generator, each decodes to its expected
 * outcome (ok vectors re-encode to the same body), and every malformed challenge sent over a
 * real libp2p stream draws the matching `error` reply while the responder keeps serving.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import type { Libp2p, Stream } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ATTEST_VECTOR_DIR,
  generateAttestVectors,
  VECTOR_ACTIVATE,
  VECTOR_EVIDENCE,
} from '../scripts/generate-attest-vectors.ts'
import { parseVector } from '../scripts/generate-vectors.ts'
import {
  ATTEST_PROTOCOL,
  attestActivateProtocol,
  attestProtocol,
  attestServeProtocol,
  decodeAttestActivate,
  decodeAttestActivated,
  decodeAttestChallenge,
  decodeAttestEvidence,
  decodeAttestForward,
  decodeAttestForwarded,
  decodeFrame,
  decodeReply,
  encodeAttestActivate,
  encodeAttestActivated,
  encodeAttestChallenge,
  encodeAttestEvidence,
  encodeAttestForward,
  encodeAttestForwarded,
  handle,
  readMessage,
  request,
  type WireProtocol,
} from '../src/index.ts'
import { toWireError } from '../src/stream.ts'
import { createPair } from './helpers/nodes.ts'

const files = readdirSync(ATTEST_VECTOR_DIR).sort()
const read = (f: string) => parseVector(readFileSync(join(ATTEST_VECTOR_DIR, f), 'utf8'))
// biome-ignore lint/suspicious/noExplicitAny: a table of codecs of two message types
const codecs: Record<string, [(b: Uint8Array) => any, (m: any) => Uint8Array]> = {
  'attest-challenge': [decodeAttestChallenge, encodeAttestChallenge],
  'attest-evidence': [decodeAttestEvidence, encodeAttestEvidence],
  'attest-activate': [decodeAttestActivate, encodeAttestActivate],
  'attest-activated': [decodeAttestActivated, encodeAttestActivated],
  'attest-forward': [decodeAttestForward, encodeAttestForward],
  'attest-forwarded': [decodeAttestForwarded, encodeAttestForwarded],
}

function outcome(decode: (b: Uint8Array) => unknown, body: Uint8Array): DigicapError | 'ok' {
  try {
    decode(body)
    return 'ok'
  } catch (err) {
    if (err instanceof DigicapError) return err
    throw err
  }
}

describe('attest vectors', () => {
  it('match the generator byte for byte (no drift)', () => {
    const generated = generateAttestVectors()
    expect(files).toEqual([...generated.keys()].sort())
    for (const name of files) {
      expect(readFileSync(join(ATTEST_VECTOR_DIR, name), 'utf8'), name).toBe(generated.get(name))
    }
    expect(files.length).toBeGreaterThanOrEqual(26)
  })

  it.each(files)('%s decodes to its expected outcome', (file) => {
    const { header, frame } = read(file)
    const [decode, encode] = codecs[header.type as string]!
    const body = decodeFrame(frame, Number(header['max-size']))
    const got = outcome(decode, body)
    if (header.expect === 'ok') {
      expect(got).toBe('ok')
      expect(encode(decode(body))).toEqual(body)
      return
    }
    expect(got).toBeInstanceOf(DigicapError)
    expect((got as DigicapError).code).toBe(header.expect)
    if (header.field !== undefined) expect((got as DigicapError).details.field).toBe(header.field)
  })

  it('refuses to encode a message that would not decode', () => {
    expect(() =>
      encodeAttestEvidence({ ...VECTOR_EVIDENCE, pcrValues: new Uint8Array(32) }),
    ).toThrow(DigicapError)
    expect(() =>
      encodeAttestChallenge({
        nonce: new Uint8Array(32),
        grantId: new Uint8Array(32),
        ephemeralKey: new Uint8Array(65),
      }),
    ).toThrow(DigicapError)
  })
})

describe('attest over libp2p', () => {
  let a: Libp2p
  let b: Libp2p
  let stop: () => Promise<void>
  let served = 0
  beforeAll(async () => {
    ;({ a, b, stop } = await createPair())
    await handle(b, attestServeProtocol, (req) => {
      served++
      if (req.t === 'attest-activate')
        return { t: 'attest-activated' as const, secret: req.idObject.slice(4, 36) }
      return {
        t: 'attest-evidence' as const,
        ...VECTOR_EVIDENCE,
        attest: Uint8Array.from([...req.nonce, 1]),
      }
    })
  })
  afterAll(async () => {
    await stop?.()
  })

  async function raw(bytes: Uint8Array): Promise<unknown> {
    const stream: Stream = await a.dialProtocol(b.peerId, ATTEST_PROTOCOL)
    try {
      stream.send(bytes)
      await stream.close()
      return decodeReply(
        attestProtocol as WireProtocol<unknown, unknown>,
        await readMessage(stream, { signal: AbortSignal.timeout(5000) }),
      )
    } catch (err) {
      return toWireError(err)
    } finally {
      if (stream.status === 'open') stream.abort(new Error('test done'))
    }
  }

  it('answers a challenge with evidence', async () => {
    const nonce = new Uint8Array(32).fill(5)
    const evidence = await request(a, b.peerId, attestProtocol, {
      nonce,
      grantId: new Uint8Array(32),
      ephemeralKey: new Uint8Array(32),
    })
    expect(Buffer.from(evidence.attest.subarray(0, 32))).toEqual(Buffer.from(nonce))
  })

  it('answers an activation on the same protocol id, and a challenge still with evidence', async () => {
    const { secret } = await request(a, b.peerId, attestActivateProtocol, VECTOR_ACTIVATE)
    expect(secret).toEqual(VECTOR_ACTIVATE.idObject.slice(4, 36))
    // each client codec refuses the other exchange's answer: no evidence taken for a secret
    const answer = encodeAttestActivated({ secret })
    expect(() => attestProtocol.decodeResponse(answer)).toThrow(/attest-evidence/)
  })

  it('answers every malformed request vector with the matching error reply', async () => {
    const before = served
    const wanted = { WIRE_FORMAT: 'format', WIRE_VERSION: 'version' } as Record<string, string>
    for (const file of files) {
      const { header, frame } = read(file)
      if (!['attest-challenge', 'attest-activate'].includes(String(header.type))) continue
      if (header.expect === 'ok') continue
      const got = (await raw(frame)) as DigicapError
      expect(got, file).toBeInstanceOf(DigicapError)
      expect(got.code, file).toBe('WIRE_REMOTE')
      expect(got.details.remoteCode, file).toBe(wanted[header.expect as string])
    }
    expect(served).toBe(before)
  })
})
