/**
 * `/digicap/pbft/1.0.0` vectors (SPEC-PBFT.md §8): each frame decodes to its expected outcome
 * (ok vectors re-encode to the same body). The EIP-712 digests and signers in the headers are
 * checked by `@digicap/committee`, whose script generates these files.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DigicapError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import { parseVector } from '../scripts/generate-vectors.ts'
import { decodeFrame, decodePbftMessage, encodePbftMessage, PBFT_PROTOCOL } from '../src/index.ts'

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'pbft-vectors')
const files = readdirSync(DIR).sort()

describe('pbft vectors', () => {
  it('there is one file per case, ok and refused', () => {
    expect(files.length).toBeGreaterThanOrEqual(20)
  })

  it.each(files)('%s', (file) => {
    const { header, frame } = parseVector(readFileSync(join(DIR, file), 'utf8'))
    expect(header.protocol).toBe(PBFT_PROTOCOL)
    const body = decodeFrame(frame, Number(header['max-size']))
    if (header.expect === 'ok') {
      const message = decodePbftMessage(body)
      expect(encodePbftMessage(message)).toEqual(body)
      return
    }
    let caught: unknown
    try {
      decodePbftMessage(body)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(DigicapError)
    expect((caught as DigicapError).code).toBe(header.expect)
    if (header.field !== undefined)
      expect((caught as DigicapError).details.field).toBe(header.field)
  })
})
