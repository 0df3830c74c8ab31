/**
 * The demo's watcher names a quote's phase by the agent's event log as the verifier node does:
 * after a first run the log holds that run and its reset, which is `before` for the next grant.
 */
import { describe, expect, it } from 'vitest'
import { phaseOfAnswer } from '../src/attestation-watch.ts'

const grant = new Uint8Array(32).fill(1)
const other = new Uint8Array(32).fill(2)
const reset = { kind: 'reset' }
const open = { kind: 'grant' }

describe('phaseOfAnswer', () => {
  it('a fresh agent (one reset) is before', () => {
    expect(phaseOfAnswer({ eventLog: [reset] }, grant)).toBe('before')
  })
  it('a log ending with a run event is during', () => {
    expect(phaseOfAnswer({ eventLog: [reset, open] }, grant)).toBe('during')
  })
  it('after a previous run (its events, then its reset) the next grant is before, not during', () => {
    expect(phaseOfAnswer({ eventLog: [reset, open, reset] }, grant)).toBe('before')
    expect(
      phaseOfAnswer({ eventLog: [reset, open, reset], cleanup: { grantId: other } }, grant),
    ).toBe('before')
  })
  it('a clean-up report for this grant is after', () => {
    expect(
      phaseOfAnswer({ eventLog: [reset, open, reset], cleanup: { grantId: grant } }, grant),
    ).toBe('after')
  })
})
