/**
 * The demo's watcher names a quote's phase by the agent's event log as the verifier node does:
 * after a first run the log holds that run and its reset, which is `before` for the next grant.
 */
import { describe, expect, it } from 'vitest'
import { phaseOfAnswer, watchAttestation } from '../src/attestation-watch.ts'

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

describe('watchAttestation', () => {
  it('a peer it cannot reach yet is challenged again after a pause, not in a spin', async () => {
    // Fault injection: the dial fails at once, as libp2p's does for a peer with no known address.
    let dials = 0
    const libp2p = {
      dialProtocol: () => {
        dials++
        return new Promise<never>((_, reject) =>
          setImmediate(() => reject(new Error('The dial request has no valid addresses'))),
        )
      },
    }
    const done = new Promise((resolve) => setTimeout(resolve, 600))
    const watched = await watchAttestation({
      libp2p: libp2p as never,
      peer: '12D3KooWBvz1cfe3ytzCd8iy227WCHwcNHTcqA3AKXxGGhjKwhrn',
      registeredHash: new Uint8Array(32),
      run: Promise.resolve({ grantId: grant, ephemeralKey: other, measurement: other }),
      done,
    })
    // 25 + 50 + 100 + 200 + 400 ms of pauses fill the 600 ms: about five tries, not thousands.
    expect(dials).toBeGreaterThanOrEqual(3)
    expect(dials).toBeLessThanOrEqual(8)
    expect(watched.quotes).toBe(0)
    expect(watched.phases.map((s) => s.verdict)).toEqual(['missed', 'missed', 'missed'])
  })
})
