/**
 * Generates `test/phase-vectors/*.txt` (SPEC.md §7): before / during / after evidence made by
 * the agent on a real swtpm, each with its expected verdict. Refusals come from real TPM
 * behaviour (PCR 23 not reset, a run that was not this one, a boot PCR extended, a power loss
 * between before and after) or from the evidence around the quote (an event log with an event
 * dropped or swapped, a dirty or missing clean-up report). Signatures and clocks differ on
 * every run; the files are kept as generated.
 *
 *   node scripts/generate-phase-vectors.ts
 */

import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startSwtpm } from '@digicap/tpm/testing'
import { type AgentQuote, createAttestationAgent } from '../src/agent/index.ts'
import { parseQuoteAttest, type QuoteClock, quoteBinding } from '../src/index.ts'
import {
  formatPhaseVector,
  PHASE_VECTOR_DIR,
  type PhaseVector,
} from '../test/helpers/phase-vector-file.ts'

const run = promisify(execFile)
const bytes = (n = 32) => new Uint8Array(randomBytes(n))
const PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 23]

export async function makePhaseVectors(): Promise<PhaseVector[]> {
  const stateDir = await mkdtemp(join(tmpdir(), 'digicap-phase-vectors-'))
  let tpm = await startSwtpm({ stateDir })
  const out: PhaseVector[] = []
  try {
    let agent = createAttestationAgent({ tcti: tpm.tcti, ek: 'ecc' })
    const keys = await agent.provision()
    await run('tpm2_pcrextend', [`0:sha256=${'0d'.repeat(32)}`], {
      env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti },
    })
    await agent.resetRunPcr()
    const grantId = bytes()
    const ephemeralPublicKey = bytes()
    const runParams = {
      runtimeDigest: bytes(),
      capsuleHeaderHash: bytes(),
      grantId,
      ephemeralPublicKey,
    }
    const take = async () => {
      const nonce = bytes()
      const q = await agent.quote({ nonce, grantId, ephemeralPublicKey })
      return { q, qualifyingData: quoteBinding({ nonce, grantId, ephemeralPublicKey }) }
    }
    let boot = new Map<number, Uint8Array>()
    const vector = (
      name: string,
      expect: string,
      comment: string,
      phase: PhaseVector['phase'],
      t: { q: AgentQuote; qualifyingData: Uint8Array },
      extra: Partial<PhaseVector> = {},
    ): PhaseVector => ({
      name,
      expect,
      comment,
      phase,
      pcrs: PCRS,
      ekPublic: keys.ekPublic,
      akPublic: keys.akPublic,
      attest: t.q.attest,
      signature: t.q.signature,
      qualifyingData: t.qualifyingData,
      pcrValues: t.q.pcrValues,
      eventLog: t.q.eventLog,
      bootPcrs: boot,
      ...extra,
    })
    const before = await take()
    boot = new Map([...before.q.pcrValues].filter(([i]) => i !== 23))
    const previous: QuoteClock = parseQuoteAttest(before.q.attest).clockInfo
    out.push(vector('before', 'ok', 'PCR 23 reset, boot PCRs as registered', 'before', before))

    await agent.beginRun(runParams)
    const during = await take()
    const log = during.q.eventLog
    out.push(
      vector('during', 'ok', "PCR 23 is this run's measurement", 'during', during, {
        run: runParams,
      }),
      vector(
        'before-not-reset',
        'QUOTE_RUN_PCR',
        'a quote taken mid-run offered as a before-quote',
        'before',
        during,
      ),
      vector(
        'during-other-run',
        'QUOTE_RUN_PCR',
        'the verifier expects another capsule header',
        'during',
        during,
        {
          run: { ...runParams, capsuleHeaderHash: bytes() },
        },
      ),
      vector(
        'during-log-dropped',
        'QUOTE_EVENT_LOG',
        'the grant event is missing from the log',
        'during',
        during,
        {
          run: runParams,
          eventLog: log.filter((e) => e.kind !== 'grant'),
        },
      ),
      vector(
        'during-log-swapped',
        'QUOTE_EVENT_LOG',
        'grant and capsule-header events swapped',
        'during',
        during,
        {
          run: runParams,
          eventLog: [log[0]!, log[1]!, log[3]!, log[2]!, log[4]!],
        },
      ),
      vector(
        'after-skipped-reset',
        'QUOTE_RUN_PCR',
        'the clean-up did not reset PCR 23',
        'after',
        during,
        {
          previous,
          grantId,
          cleanup: { grantId, workspaceRemoved: true, keyBuffersWiped: true },
        },
      ),
    )

    await agent.endRun({ grantId, workspaceRemoved: true, keyBuffersWiped: true })
    const after = await take()
    const clean = after.q.cleanup ?? null
    out.push(
      vector(
        'after',
        'ok',
        'PCR 23 reset after the run, no reboot, clean-up report for this grant',
        'after',
        after,
        { previous, grantId, cleanup: clean },
      ),
      vector(
        'after-dirty',
        'QUOTE_CLEANUP',
        'the report admits the workspace is still there',
        'after',
        after,
        {
          previous,
          grantId,
          cleanup: { grantId, workspaceRemoved: false, keyBuffersWiped: true },
        },
      ),
      vector(
        'after-no-report',
        'QUOTE_CLEANUP',
        'no clean-up report with the after-quote',
        'after',
        after,
        { previous, grantId, cleanup: null },
      ),
      vector(
        'after-report-other-grant',
        'QUOTE_CLEANUP',
        'the report is for another grant',
        'after',
        after,
        {
          previous,
          grantId,
          cleanup: { grantId: bytes(), workspaceRemoved: true, keyBuffersWiped: true },
        },
      ),
    )

    await run('tpm2_pcrextend', [`7:sha256=${'ee'.repeat(32)}`], {
      env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti },
    })
    out.push(
      vector(
        'before-boot-changed',
        'QUOTE_BOOT_PCRS',
        'PCR 7 extended since registration',
        'before',
        await take(),
      ),
    )

    // power loss: swtpm killed without TPM2_Shutdown and started again on the same state
    await tpm.stop()
    tpm = await startSwtpm({ stateDir })
    agent = createAttestationAgent({ tcti: tpm.tcti, ek: 'ecc' })
    await run('tpm2_pcrextend', [`0:sha256=${'0d'.repeat(32)}`], {
      env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti },
    })
    await agent.resetRunPcr()
    const rebooted = await take()
    out.push(
      vector(
        'after-power-loss',
        'QUOTE_REBOOT',
        'the TPM was reset between the before- and the after-quote',
        'after',
        rebooted,
        {
          previous,
          grantId,
          cleanup: { grantId, workspaceRemoved: true, keyBuffersWiped: true },
        },
      ),
    )
    return out
  } finally {
    await tpm.stop()
    await rm(stateDir, { recursive: true, force: true })
  }
}

async function main(): Promise<void> {
  const vectors = await makePhaseVectors()
  await mkdir(PHASE_VECTOR_DIR, { recursive: true })
  for (const f of await readdir(PHASE_VECTOR_DIR))
    if (f.endsWith('.txt')) await rm(join(PHASE_VECTOR_DIR, f))
  for (const v of vectors)
    await writeFile(join(PHASE_VECTOR_DIR, `${v.name}.txt`), formatPhaseVector(v))
  console.log(`wrote ${vectors.length} vectors to ${PHASE_VECTOR_DIR}`)
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
