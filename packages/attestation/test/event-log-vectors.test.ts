/**
 * PCR 23 event-log vectors (SPEC.md §6): the files match the generator; every `ok` vector
 * decodes, re-encodes to the same bytes and replays to its `pcr23`; every malformed one is
 * `EVENT_LOG_FORMAT` naming its field. The `pcr23` of the run vectors is what a real swtpm
 * holds after the same resets and extends, so the vectors are TPM behaviour, not our own
 * arithmetic checked against itself.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  EVENT_LOG_VECTOR_DIR,
  generateEventLogVectors,
  parseEventLogVector,
} from '../scripts/generate-event-log-vectors.ts'
import { decodeEventLog, encodeEventLog, replayEventLog } from '../src/index.ts'
import { startQuoter, type TpmQuoter } from './helpers/tpm-quotes.ts'

const files = readdirSync(EVENT_LOG_VECTOR_DIR).sort()
const read = (f: string) => parseEventLogVector(readFileSync(join(EVENT_LOG_VECTOR_DIR, f), 'utf8'))
const fromHex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'))

let quoter: TpmQuoter
beforeAll(async () => {
  quoter = await startQuoter()
}, 60_000)
afterAll(async () => {
  await quoter?.stop()
})

describe('event-log vectors', () => {
  it('match the generator (no drift), at least 12 cases', () => {
    const generated = generateEventLogVectors()
    expect(files).toEqual([...generated.keys()].sort())
    for (const f of files)
      expect(readFileSync(join(EVENT_LOG_VECTOR_DIR, f), 'utf8'), f).toBe(generated.get(f))
    expect(files.length).toBeGreaterThanOrEqual(12)
  })

  it.each(files)('%s gets its expected outcome', (file) => {
    const v = read(file)
    const log = fromHex(v.log ?? '')
    if (v.expect === 'ok') {
      const events = decodeEventLog(log)
      expect(Buffer.from(encodeEventLog(events))).toEqual(Buffer.from(log))
      expect(Buffer.from(replayEventLog(events)).toString('hex')).toBe(v.pcr23)
      return
    }
    let err: unknown
    try {
      decodeEventLog(log)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(DigicapError)
    expect((err as DigicapError).code).toBe(v.expect)
    expect((err as DigicapError).details.field).toBe(v.field)
  })

  it('replays to what a real swtpm holds after the same resets and extends', async () => {
    for (const name of ['before', 'during', 'after', 'swapped', 'max-events']) {
      const v = read(`${name}.txt`)
      await quoter.resetPcr(23)
      for (const e of decodeEventLog(fromHex(v.log ?? ''))) {
        if (e.kind === 'reset') await quoter.resetPcr(23)
        else await quoter.extend(23, e.digest)
      }
      const pcr23 = (await quoter.readPcrs([23])).get(23) ?? new Uint8Array()
      expect(Buffer.from(pcr23).toString('hex'), name).toBe(v.pcr23)
    }
  }, 120_000)
})
