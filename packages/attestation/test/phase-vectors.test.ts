/**
 * Phase vectors (SPEC.md §7, `test/phase-vectors/`): each committed file gets its expected
 * verdict without a TPM, and the generator run now on a fresh swtpm gives the same verdicts,
 * so the files stay what real TPM behaviour produces.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import { makePhaseVectors } from '../scripts/generate-phase-vectors.ts'
import { verifyPhase } from '../src/index.ts'
import {
  PHASE_VECTOR_DIR,
  type PhaseVector,
  parsePhaseVector,
} from './helpers/phase-vector-file.ts'

const files = readdirSync(PHASE_VECTOR_DIR)
  .filter((f) => f.endsWith('.txt'))
  .sort()

function verdict(v: PhaseVector): string {
  try {
    verifyPhase(
      { attest: v.attest, signature: v.signature, pcrValues: v.pcrValues },
      {
        phase: v.phase,
        attestationKey: { ekPublic: v.ekPublic, akPublic: v.akPublic },
        qualifyingData: v.qualifyingData,
        pcrs: v.pcrs,
        bootPcrs: v.bootPcrs,
        eventLog: v.eventLog,
        ...(v.run === undefined ? {} : { run: v.run }),
        ...(v.previous === undefined ? {} : { previous: v.previous }),
        ...(v.cleanup === undefined || v.grantId === undefined
          ? {}
          : { cleanup: { report: v.cleanup ?? undefined, grantId: v.grantId } }),
      },
    )
    return 'ok'
  } catch (err) {
    if (err instanceof DigicapError) return err.code
    throw err
  }
}

describe('phase vectors', () => {
  it('cover every phase rule (at least 12 files, each refusal code)', () => {
    const vectors = files.map((f) =>
      parsePhaseVector(readFileSync(join(PHASE_VECTOR_DIR, f), 'utf8')),
    )
    expect(vectors.length).toBeGreaterThanOrEqual(12)
    const codes = new Set(vectors.map((v) => v.expect))
    for (const code of [
      'ok',
      'QUOTE_RUN_PCR',
      'QUOTE_EVENT_LOG',
      'QUOTE_BOOT_PCRS',
      'QUOTE_CLEANUP',
      'QUOTE_REBOOT',
    ])
      expect(codes, code).toContain(code)
  })

  it.each(files)('%s gets its expected verdict', (file) => {
    const v = parsePhaseVector(readFileSync(join(PHASE_VECTOR_DIR, file), 'utf8'))
    expect(verdict(v)).toBe(v.expect)
  })

  it('fresh ones from a real swtpm get the same verdicts', async () => {
    const fresh = await makePhaseVectors()
    expect(fresh.map((v) => v.name).sort()).toEqual(
      files.map((f) => f.replace(/\.txt$/, '')).sort(),
    )
    expect(Object.fromEntries(fresh.map((v) => [v.name, verdict(v)]))).toEqual(
      Object.fromEntries(fresh.map((v) => [v.name, v.expect])),
    )
  }, 120_000)
})
