/**
 * The PCR 23 event log: strict codec, and replay against a real swtpm — reset PCR 23, extend a
 * run's four measurements, quote; the log replays to the quoted PCR 23, and a log with an event
 * dropped, swapped or changed does not. After clean-up (reset logged) it replays to zero again.
 */
import { randomBytes } from 'node:crypto'
import { DigicapError } from '@digicap/capsule-core'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  checkEventLog,
  decodeEventLog,
  EventLogFormatError,
  encodeEventLog,
  importAttestationKey,
  PCR23_RESET_VALUE,
  quoteBinding,
  type RunEvent,
  replayEventLog,
  verifyQuote,
} from '../src/index.ts'
import { startQuoter, type TpmQuoter } from './helpers/tpm-quotes.ts'

const digest = () => new Uint8Array(randomBytes(32))
const runEvents = (): RunEvent[] => [
  { kind: 'runtime', digest: digest() },
  { kind: 'capsule-header', digest: digest() },
  { kind: 'grant', digest: digest() },
  { kind: 'ephemeral-key', digest: digest() },
]

function code(f: () => unknown): string {
  try {
    f()
    return 'ok'
  } catch (err) {
    if (err instanceof DigicapError) return err.code
    throw err
  }
}

describe('PCR 23 event log on a real swtpm', () => {
  let quoter: TpmQuoter
  let record: { ekPublic: Uint8Array; akPublic: Uint8Array }

  beforeAll(async () => {
    quoter = await startQuoter()
    const ekPublic = await quoter.createEk('rsa')
    record = { ekPublic, akPublic: await quoter.createAk('ecc', '0x81010003') }
  }, 120_000)

  afterAll(async () => {
    await quoter?.stop()
  })

  async function quotedPcr23(): Promise<Uint8Array> {
    const qualifyingData = quoteBinding({
      nonce: digest(),
      grantId: digest(),
      ephemeralPublicKey: digest(),
    })
    const q = await quoter.quote('0x81010003', { qualifyingData })
    verifyQuote(q, { attestationKey: importAttestationKey(record), qualifyingData })
    const pcr23 = q.pcrValues.get(23)
    if (pcr23 === undefined) throw new Error('no PCR 23')
    return pcr23
  }

  it('replays to the quoted PCR 23 through a run and its clean-up; tampered logs do not', async () => {
    await quoter.resetPcr(23)
    expect(Buffer.from(await quotedPcr23())).toEqual(Buffer.from(PCR23_RESET_VALUE))
    const events = runEvents()
    for (const e of events) await quoter.extend(23, e.digest)
    const during = await quotedPcr23()
    const log = decodeEventLog(encodeEventLog(events))
    expect(code(() => checkEventLog(log, during))).toBe('ok')

    const swapped = [events[1], events[0], events[2], events[3]] as RunEvent[]
    const changed = events.map((e, i) => (i === 2 ? { ...e, digest: digest() } : e))
    for (const bad of [
      events.slice(0, 3),
      swapped,
      changed,
      [...events, { kind: 'reset', digest: new Uint8Array(32) }] as RunEvent[],
    ]) {
      expect(code(() => checkEventLog(bad, during))).toBe('QUOTE_EVENT_LOG')
    }

    await quoter.resetPcr(23)
    const after = await quotedPcr23()
    const cleaned: RunEvent[] = [...events, { kind: 'reset', digest: new Uint8Array(32) }]
    expect(code(() => checkEventLog(cleaned, after))).toBe('ok')
    // "PCR 23 not reset": the run's log without the reset does not match a reset PCR
    expect(code(() => checkEventLog(events, after))).toBe('QUOTE_EVENT_LOG')
  })
})

describe('event log codec', () => {
  it('round-trips and replays the way TPM2_PCR_Extend does', () => {
    const events = runEvents()
    expect(decodeEventLog(encodeEventLog(events))).toEqual(events)
    expect(replayEventLog([])).toEqual(PCR23_RESET_VALUE)
  })

  it('names the field of every malformed log', () => {
    const good = encodeEventLog(runEvents())
    const cases: [Uint8Array, string][] = [
      [good.subarray(0, 3), 'header'],
      [Uint8Array.of(0x58, ...good.subarray(1)), 'magic'],
      [Uint8Array.of(...good.subarray(0, 4), 2, ...good.subarray(5)), 'version'],
      [good.subarray(0, good.length - 1), 'events'],
      [Uint8Array.of(...good, 0), '(end)'],
      [Uint8Array.of(...good.subarray(0, 7), 9, ...good.subarray(8)), 'events[0].kind'],
      [Uint8Array.of(...good.subarray(0, 5), 0x01, 0x00), 'count'],
      [
        Uint8Array.of(...good.subarray(0, 5), 0, 1, 0, ...new Uint8Array(31), 1),
        'events[0].digest',
      ],
    ]
    for (const [bytes, field] of cases) {
      let err: unknown
      try {
        decodeEventLog(bytes)
      } catch (e) {
        err = e
      }
      expect(err, field).toBeInstanceOf(EventLogFormatError)
      expect((err as EventLogFormatError).details.field, field).toBe(field)
    }
    expect(() => encodeEventLog([{ kind: 'grant', digest: new Uint8Array(31) }])).toThrow(
      EventLogFormatError,
    )
  })

  it('decodes random bytes only into a typed error or a log that re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const input = Uint8Array.of(0x44, 0x47, 0x45, 0x4c, 1, ...bytes)
        try {
          expect(encodeEventLog(decodeEventLog(input))).toEqual(input)
        } catch (err) {
          expect(err).toBeInstanceOf(EventLogFormatError)
        }
      }),
      { numRuns: 2000 },
    )
  })
})
