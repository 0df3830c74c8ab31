/** The daemon's verifier lines say when a phase came from a forwarded answer, and why one was refused (ADR 0095). */
import { expect, it } from 'vitest'
import { verifierLine } from '../src/node/index.ts'

it('a forwarded phase names its challenger; a refused forward its reason', () => {
  const jobId = `0x${'ab'.repeat(32)}`
  const by = '0x14dC79964da2C08b23698B3D3cc7Ca32193d9955'
  const phase = verifierLine({
    event: 'phase',
    jobId,
    phase: { phase: 'during', verdict: 'verified', forwardedBy: by },
  })
  expect(phase.doc).toMatchObject({ event: 'committee-phase', forwardedBy: by })
  expect(phase.text).toBe(`job 0xabababab… during verified (forwarded, challenged by ${by})\n`)
  const own = verifierLine({
    event: 'phase',
    jobId,
    phase: { phase: 'after', verdict: 'verified' },
  })
  expect(own.doc).not.toHaveProperty('forwardedBy')
  const refused = verifierLine({ event: 'forward-refused', jobId, reason: 'stale' })
  expect(refused.doc).toEqual({ event: 'committee-forward-refused', jobId, reason: 'stale' })
  expect(refused.text).toBe('job 0xabababab… forwarded answer refused: stale\n')
})
