/**
 * The format version 2 vectors in test/vectors-v2/ (SPEC.md §11.5), as test/vectors.test.ts
 * checks version 1's: every vector through the buffer, Web stream, Node stream and file readers
 * (the file reader also on one thread and on two lanes), which must agree with the vector's
 * outcome, error code and plaintext; the generator must reproduce the files byte for byte; and
 * SPEC.md §11.5 must name every vector.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { decode } from 'cborg'
import { afterAll, describe, expect, it } from 'vitest'
import { parseVector, renderVector } from '../scripts/generate-vectors.ts'
import { generateVectorsV2 } from '../scripts/generate-vectors-v2.ts'
import { recoverDigestSigner } from '../src/eip712/signature.ts'
import { hashTypedData } from '../src/eip712/typed-data.ts'
import { toHex } from '../src/encoding/hex.ts'
import { CAPSULE_PREAMBLE_LENGTH, capsuleTypedData, parseCapsuleHeader } from '../src/index.ts'
import { OWNER } from './fixtures.ts'
import { type Outcome, viaBuffer, viaFile, viaNodeStream, viaWebStream } from './readers.ts'
import { describeSpecTable } from './spec-table.ts'

const dir = new URL('./vectors-v2/', import.meta.url).pathname
const files = readdirSync(dir).sort()
const tmp = mkdtempSync(join(tmpdir(), 'digicap-vectors-v2-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))
const generated = generateVectorsV2()

describe('format version 2 test vectors', () => {
  it('has the cases of SPEC §11.5, covering success and failure', () => {
    expect(files.length).toBeGreaterThanOrEqual(20)
    const kinds = files.map((f) => parseVector(readFileSync(join(dir, f))).fields.expect)
    expect(kinds).toContain('success')
    expect(kinds).toContain('failure')
  })

  it('re-running the generator reproduces the committed files byte for byte', () => {
    expect(generated.map((v) => v.name).sort()).toEqual(files)
    for (const v of generated) {
      expect(Buffer.from(renderVector(v)).equals(readFileSync(join(dir, v.name))), v.name).toBe(
        true,
      )
    }
  })

  it('stays small: at most two vectors of two bodies, under 4.5 MiB in all', () => {
    let total = 0
    let twoBodies = 0
    for (const f of files) {
      const { capsule } = parseVector(readFileSync(join(dir, f)))
      total += capsule.length
      if (capsule.length > 1024 * 1024 + 64 * 1024) twoBodies++
    }
    expect(twoBodies).toBeLessThanOrEqual(2)
    expect(total).toBeLessThan(4.5 * 1024 * 1024)
  })

  // A header fault must be the only fault: the owner signed the faulty header bytes themselves,
  // so a reader that skipped the faulty rule would go on to the signature and pass it.
  it('every vector is signed by the owner over its own header bytes', () => {
    const base = parseCapsuleHeader(
      parseVector(readFileSync(join(dir, 'valid-100-bytes'))).capsule,
    ).header
    for (const f of files) {
      const { capsule } = parseVector(readFileSync(join(dir, f)))
      if (capsule.length < CAPSULE_PREAMBLE_LENGTH) continue
      const headerLength = Buffer.from(capsule).readUInt32BE(8)
      const headerBytes = capsule.subarray(
        CAPSULE_PREAMBLE_LENGTH,
        CAPSULE_PREAMBLE_LENGTH + headerLength,
      )
      const signature = capsule.subarray(
        CAPSULE_PREAMBLE_LENGTH + headerLength,
        CAPSULE_PREAMBLE_LENGTH + headerLength + 65,
      )
      const raw = decode(headerBytes) as Record<string, Record<string, unknown>>
      const td = capsuleTypedData(base)
      // every signed field but the size is the base header's in every vector
      expect(Buffer.from(raw.capsuleId as unknown as Uint8Array), f).toEqual(
        Buffer.from(base.capsuleId),
      )
      expect(raw.createdAt, f).toBe(base.createdAt)
      td.message = {
        ...td.message,
        plaintextSize: BigInt(raw.payload?.plaintextSize as number),
        headerHash: toHex(keccak_256(headerBytes)),
      }
      expect(recoverDigestSigner(hashTypedData(td), signature), f).toBe(OWNER)
    }
  })

  for (const file of files) {
    it(file, async () => {
      const { fields, capsule } = parseVector(readFileSync(join(dir, file)))
      const dataKey = Buffer.from(fields['data key'] as string, 'hex')
      const outcomes: Record<string, Outcome> = {
        buffer: await viaBuffer(capsule, dataKey),
        webStream: await viaWebStream(capsule, dataKey),
        nodeStream: await viaNodeStream(capsule, dataKey),
        file: await viaFile(tmp, file, capsule, dataKey),
        'file threads 1': await viaFile(tmp, file, capsule, dataKey, 1),
        'file threads 2': await viaFile(tmp, file, capsule, dataKey, 2),
      }
      const reason = generated.find((v) => v.name === file)?.reason
      for (const [reader, o] of Object.entries(outcomes)) {
        if (fields.expect === 'success') {
          expect(o.ok, `${reader}: ${JSON.stringify(o)}`).toBe(true)
          if (!o.ok) continue
          expect(o.plaintext.length, reader).toBe(Number(fields['plaintext size']))
          expect(createHash('sha256').update(o.plaintext).digest('hex'), reader).toBe(
            fields['plaintext sha256'],
          )
        } else {
          expect(o.ok, reader).toBe(false)
          if (o.ok) continue
          expect(o.code, reader).toBe(fields.error)
          // the reason SPEC names for this fault, given alike by every reader
          expect(o.reason, reader).toBe(reason)
        }
      }
    })
  }
})

describeSpecTable({ heading: '### 11.5 Test vectors', files, minRows: 5, minNames: 15 })
