/**
 * `holdPhasesForQuotes` on a real swtpm: a measured run's phases wait for a watching verifier's
 * quote — before PCR 23 is extended, once it is, and once it is reset — and each quote that ends
 * a hold shows the phase it held (PCR 23 at reset, PCR 23 measured, reset with the run's
 * clean-up report); only quotes for the held run's grant id count; with no verifier, each hold
 * ends after `holdMs`.
 */
import { randomBytes } from 'node:crypto'
import { type AttestationAgent, createAttestationAgent } from '@digicap/attestation/agent'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { holdPhasesForQuotes } from '../src/node/phase-hold.ts'

const bytes = () => new Uint8Array(randomBytes(32))
const zero = Buffer.alloc(32)
let tpm: Swtpm
let agent: AttestationAgent

beforeAll(async () => {
  tpm = await startSwtpm()
  agent = createAttestationAgent({ tcti: tpm.tcti })
  await agent.provision()
  await agent.resetRunPcr()
}, 90_000)

afterAll(async () => {
  await tpm?.stop()
})

const values = () => ({
  runtimeDigest: bytes(),
  capsuleHeaderHash: bytes(),
  grantId: bytes(),
  ephemeralPublicKey: bytes(),
})

describe('holdPhasesForQuotes', () => {
  it('holds before, during and after until a quote is answered in each, and the quotes show them', async () => {
    const { run, served } = holdPhasesForQuotes(agent, 60_000)
    const steps: string[] = []
    const measured = values()
    const measuring = run.measureRun(measured).then(() => steps.push('measured'))
    const quote = (grantId = measured.grantId) =>
      served.quote({ nonce: bytes(), grantId, ephemeralPublicKey: bytes() })
    // Held before extending: PCR 23 stays at reset until a verifier quoted it.
    await new Promise((r) => setTimeout(r, 300))
    expect(steps).toEqual([])
    expect(Buffer.from(await agent.readRunPcr())).toEqual(zero)
    const before = await quote()
    expect(Buffer.from(before.pcrValues.get(23) as Uint8Array)).toEqual(zero)
    // ... then measured, and held again until a quote sees the measured PCR 23.
    for (let i = 0; i < 100 && Buffer.from(await agent.readRunPcr()).equals(zero); i++) {
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(steps).toEqual([])
    const during = await quote()
    expect(Buffer.from(during.pcrValues.get(23) as Uint8Array)).not.toEqual(zero)
    expect(during.eventLog.map((e) => e.kind)).toEqual([
      'reset',
      'runtime',
      'capsule-header',
      'grant',
      'ephemeral-key',
    ])
    await measuring
    expect(steps).toEqual(['measured'])
    // After clean-up: reset, held until a quote carries this run's clean-up report.
    const { grantId } = measured
    const ending = run.endRun({ grantId, workspaceRemoved: true, keyBuffersWiped: true })
    let ended = false
    ending.then(() => {
      ended = true
    })
    for (let i = 0; i < 100 && !Buffer.from(await agent.readRunPcr()).equals(zero); i++) {
      await new Promise((r) => setTimeout(r, 20))
    }
    await new Promise((r) => setTimeout(r, 200))
    expect(ended).toBe(false)
    const after = await quote(grantId)
    expect(Buffer.from(after.pcrValues.get(23) as Uint8Array)).toEqual(zero)
    expect(Buffer.from(after.cleanup?.grantId as Uint8Array)).toEqual(Buffer.from(grantId))
    await ending
  }, 60_000)

  it('with no verifier, each hold ends after holdMs', async () => {
    const { run } = holdPhasesForQuotes(agent, 300)
    const started = performance.now()
    await run.measureRun(values())
    await run.endRun({ grantId: bytes(), workspaceRemoved: true, keyBuffersWiped: true })
    const ms = performance.now() - started
    expect(ms).toBeGreaterThanOrEqual(850) // three holds of 300 ms
    expect(Buffer.from(await agent.readRunPcr())).toEqual(zero)
  }, 60_000)

  it('a committee hold waits for distinct challengers: a repeated peer does not end it, the grace does', async () => {
    const { run, served } = holdPhasesForQuotes(agent, 60_000, { challengers: 3, graceMs: 2000 })
    let measured = false
    const held = values()
    const measuring = run.measureRun(held).then(() => {
      measured = true
    })
    await new Promise((r) => setTimeout(r, 100))
    const binding = () => ({ nonce: bytes(), grantId: held.grantId, ephemeralPublicKey: bytes() })
    // One peer asking three times is one challenger: the before-hold stays.
    for (let i = 0; i < 3; i++) await served.quote(binding(), { peer: 'peer-a' })
    expect(Buffer.from(await agent.readRunPcr())).toEqual(zero)
    await served.quote(binding(), { peer: 'peer-b' })
    await served.quote(binding(), { peer: 'peer-c' }) // the third distinct challenger ends it
    for (let i = 0; i < 100 && Buffer.from(await agent.readRunPcr()).equals(zero); i++) {
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(Buffer.from(await agent.readRunPcr())).not.toEqual(zero)
    expect(measured).toBe(false)
    // During: one challenger only (a silent committee): the grace ends the hold, not holdMs.
    const started = performance.now()
    await served.quote(binding(), { peer: 'peer-a' })
    await measuring
    const ms = performance.now() - started
    expect(ms).toBeGreaterThanOrEqual(1900)
    expect(ms).toBeLessThan(30_000)
    await agent.resetRunPcr()
  }, 60_000)

  it('a quote for another grant id does not end a hold, whoever asks', async () => {
    const { run, served } = holdPhasesForQuotes(agent, 60_000)
    const held = values()
    const measuring = run.measureRun(held)
    await new Promise((r) => setTimeout(r, 100))
    for (const peer of ['peer-a', 'peer-b', undefined]) {
      await served.quote(
        { nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() },
        peer === undefined ? undefined : { peer },
      )
    }
    await new Promise((r) => setTimeout(r, 300))
    expect(Buffer.from(await agent.readRunPcr())).toEqual(zero) // still held before
    await served.quote({ nonce: bytes(), grantId: held.grantId, ephemeralPublicKey: bytes() })
    for (let i = 0; i < 100 && Buffer.from(await agent.readRunPcr()).equals(zero); i++) {
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(Buffer.from(await agent.readRunPcr())).not.toEqual(zero)
    await served.quote({ nonce: bytes(), grantId: held.grantId, ephemeralPublicKey: bytes() })
    await measuring
    await agent.resetRunPcr()
  }, 60_000)
})
