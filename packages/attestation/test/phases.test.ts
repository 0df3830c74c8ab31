/**
 * Before / during / after verdicts on a real swtpm, driven as an executor would: boot
 * measurements in PCRs 0–7, PCR 23 reset, the run's four extends, clean-up reset. Each phase is
 * accepted when the TPM state is right, and refused with its own code when it is not (wrong run,
 * PCR 23 not reset, a boot PCR changed, a TPM Reset between before and after).
 */
import { randomBytes } from 'node:crypto'
import { DigicapError, requestMeasurement } from '@digicap/capsule-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type GrantMeasurement,
  openRunMeasurement,
  type Phase,
  parseQuoteAttest,
  type QuoteClock,
  quoteBinding,
  type RunEvent,
  type RunMeasurementParameters,
  runEvents,
  verifyPhase,
} from '../src/index.ts'
import { type Quote, startQuoter, type TpmQuoter } from './helpers/tpm-quotes.ts'

const AK = '0x81010003'
const PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 23]
const bytes = () => new Uint8Array(randomBytes(32))
const reset: RunEvent = { kind: 'reset', digest: new Uint8Array(32) }

let quoter: TpmQuoter
let record: { ekPublic: Uint8Array; akPublic: Uint8Array }
let bootPcrs: Map<number, Uint8Array>

beforeAll(async () => {
  quoter = await startQuoter()
  const ekPublic = await quoter.createEk('rsa')
  record = { ekPublic, akPublic: await quoter.createAk('ecc', AK) }
  await quoter.extend(0, bytes()) // a boot measurement, registered below as the reference
  await quoter.extend(7, bytes())
  bootPcrs = new Map([...(await quoter.readPcrs(PCRS))].filter(([i]) => i !== 23))
}, 120_000)

afterAll(async () => {
  await quoter?.stop()
})

async function phase(
  name: Phase,
  eventLog: RunEvent[],
  more: { run?: RunMeasurementParameters; grant?: GrantMeasurement; previous?: QuoteClock } = {},
): Promise<{ code: string; quote: Quote }> {
  const qualifyingData = quoteBinding({
    nonce: bytes(),
    grantId: bytes(),
    ephemeralPublicKey: bytes(),
  })
  const quote = await quoter.quote(AK, { qualifyingData })
  try {
    verifyPhase(quote, {
      phase: name,
      attestationKey: record,
      qualifyingData,
      bootPcrs,
      eventLog,
      ...more,
    })
    return { code: 'ok', quote }
  } catch (err) {
    if (err instanceof DigicapError) return { code: err.code, quote }
    throw err
  }
}

describe('phases of a run on a real swtpm', () => {
  it('before, during and after are accepted; each wrong state gets its code', async () => {
    const run: RunMeasurementParameters = {
      runtimeDigest: bytes(),
      capsuleHeaderHash: bytes(),
      grantId: bytes(),
      ephemeralPublicKey: bytes(),
    }
    await quoter.resetPcr(23)
    const before = await phase('before', [reset])
    expect(before.code).toBe('ok')
    const { clockInfo } = parseQuoteAttest(before.quote.attest)

    for (const e of runEvents(run)) await quoter.extend(23, e.digest)
    const log = [reset, ...runEvents(run)]
    expect((await phase('during', log, { run })).code).toBe('ok')
    expect((await phase('during', log, { run: { ...run, grantId: bytes() } })).code).toBe(
      'QUOTE_RUN_PCR',
    )
    expect((await phase('during', [reset, ...runEvents(run).slice(1)], { run })).code).toBe(
      'QUOTE_EVENT_LOG',
    )
    // ADR 0021: a verifier that knows only the grant (its measurement, id and key)
    const grant: GrantMeasurement = {
      measurement: requestMeasurement(run.runtimeDigest, run.capsuleHeaderHash),
      grantId: run.grantId,
      ephemeralPublicKey: run.ephemeralPublicKey,
    }
    expect((await phase('during', log, { grant })).code).toBe('ok')
    for (const wrong of [
      { measurement: requestMeasurement(bytes(), run.capsuleHeaderHash) }, // another runtime
      { measurement: requestMeasurement(run.runtimeDigest, bytes()) }, // another capsule
      { grantId: bytes() },
      { ephemeralPublicKey: bytes() },
    ]) {
      expect((await phase('during', log, { grant: { ...grant, ...wrong } })).code).toBe(
        'QUOTE_RUN_PCR',
      )
    }
    // clean-up skipped: the honest log replays, but PCR 23 is not back at its reset value
    expect((await phase('after', log, { previous: clockInfo })).code).toBe('QUOTE_RUN_PCR')

    await quoter.resetPcr(23)
    expect((await phase('after', [...log, reset], { previous: clockInfo })).code).toBe('ok')
    // the after-quote's log must show the reset
    expect((await phase('after', log, { previous: clockInfo })).code).toBe('QUOTE_EVENT_LOG')

    // a boot PCR changed since registration
    await quoter.extend(5, bytes())
    expect((await phase('after', [...log, reset], { previous: clockInfo })).code).toBe(
      'QUOTE_BOOT_PCRS',
    )

    // a power loss between before and after: resetCount grew
    await quoter.powerCycle()
    expect((await phase('after', [reset], { previous: clockInfo })).code).toBe('QUOTE_REBOOT')
  })

  it('opens the measurement only from exactly one run since the last reset', () => {
    const run: RunMeasurementParameters = {
      runtimeDigest: bytes(),
      capsuleHeaderHash: bytes(),
      grantId: bytes(),
      ephemeralPublicKey: bytes(),
    }
    const grant: GrantMeasurement = {
      measurement: requestMeasurement(run.runtimeDigest, run.capsuleHeaderHash),
      grantId: run.grantId,
      ephemeralPublicKey: run.ephemeralPublicKey,
    }
    const events = runEvents(run)
    const opened = openRunMeasurement([reset, ...events], grant)
    expect(opened.runtimeDigest).toEqual(run.runtimeDigest)
    expect(opened.capsuleHeaderHash).toEqual(run.capsuleHeaderHash)
    // an earlier run before a reset does not count; a swapped, missing or extra event does
    expect(() => openRunMeasurement([...events, reset, ...events], grant)).not.toThrow()
    const field = (log: RunEvent[]) => {
      try {
        openRunMeasurement(log, grant)
        return 'ok'
      } catch (err) {
        return (err as DigicapError).details?.field
      }
    }
    const [r, h, g, k] = events as [RunEvent, RunEvent, RunEvent, RunEvent]
    expect(field([reset, h, r, g, k])).toBe('eventLog')
    expect(field([reset, r, h, g])).toBe('eventLog')
    expect(field([reset, r, h, g, k, k])).toBe('eventLog')
    expect(field([reset])).toBe('eventLog')
    // the header event relabelled as the runtime: kinds are checked, not only the digests
    expect(field([reset, { ...h, kind: 'runtime' }, { ...r, kind: 'capsule-header' }, g, k])).toBe(
      'measurement',
    )
  })

  it('refuses to judge a phase without what it needs', () => {
    const ev = { attest: new Uint8Array(), signature: new Uint8Array(), pcrValues: new Map() }
    const base = { attestationKey: record, qualifyingData: bytes(), bootPcrs, eventLog: [] }
    expect(() => verifyPhase(ev, { ...base, phase: 'during' })).toThrow(
      /needs the run or the grant/,
    )
    expect(() => verifyPhase(ev, { ...base, phase: 'after' })).toThrow(/before-quote clock/)
    expect(() => verifyPhase(ev, { ...base, phase: 'before', pcrs: [0, 23] })).toThrow(/0–7 and 23/)
  })
})
