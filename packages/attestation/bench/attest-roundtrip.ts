/**
 * `/digicap/attest/1.0.0` round trip on loopback: a verifier node challenges an executor node
 * whose agent quotes on a real swtpm, then verifies the evidence (before phase). p50 / p99 of
 * the whole exchange (fresh nonce, stream, TPM2_Quote + 2 × TPM2_PCR_Read, verify), against,
 * in the same run: the agent's quote alone (the TPM's share) and `tpm2_quote` + `tpm2_pcrread`
 * through tpm2-tools (what a shell-based agent pays per quote).
 *
 *   node bench/attest-roundtrip.ts [iterations] [baselineIterations]   (ORDER=ecc-first to swap)
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startSwtpm } from '@digicap/tpm/testing'
import { createAttestationAgent, serveAttestation } from '../src/agent/index.ts'
import { requestAttestation, verifyAttestation } from '../src/index.ts'
import { createPair } from '../test/helpers/nodes.ts'

const iterations = Number(process.argv[2] ?? 200)
const baselineIterations = Number(process.argv[3] ?? 30)

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}
async function time(n: number, f: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  const ms: number[] = []
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint()
    await f()
    ms.push(Number(process.hrtime.bigint() - start) / 1e6)
  }
  ms.sort((a, b) => a - b)
  return { p50: percentile(ms, 50), p99: percentile(ms, 99) }
}
const fmt = (t: { p50: number; p99: number }) =>
  `p50 ${t.p50.toFixed(2)} ms, p99 ${t.p99.toFixed(2)} ms`

const tpm = await startSwtpm()
const pair = await createPair()
try {
  for (const kind of (process.env.ORDER === 'ecc-first' ? ['ecc', 'rsa'] : ['rsa', 'ecc']) as (
    | 'rsa'
    | 'ecc'
  )[]) {
    const agent = createAttestationAgent({
      tcti: tpm.tcti,
      ek: kind,
      akHandle: kind === 'rsa' ? 0x81010010 : 0x81010011,
    })
    const keys = await agent.provision()
    await agent.resetRunPcr()
    const unserve = await serveAttestation(pair.b, agent)
    const challenge = {
      grantId: new Uint8Array(randomBytes(32)),
      ephemeralKey: new Uint8Array(randomBytes(32)),
    }
    const first = await requestAttestation(pair.a, pair.b.peerId, challenge)
    const bootPcrs = new Map([...first.quote.pcrValues].filter(([i]) => i !== 23))
    const roundTrip = async () => {
      const r = await requestAttestation(pair.a, pair.b.peerId, challenge)
      verifyAttestation(r, { phase: 'before', attestationKey: keys, bootPcrs })
    }
    await time(100, roundTrip) // warm-up (the first kind measured also warms libp2p and the JIT)
    const wire = await time(iterations, roundTrip)
    const binding = {
      nonce: new Uint8Array(32),
      ...challenge,
      ephemeralPublicKey: challenge.ephemeralKey,
    }
    const quoteOnly = await time(iterations, () => agent.quote(binding))
    const dir = mkdtempSync(join(tmpdir(), 'digicap-bench-'))
    const env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti }
    const tools = await time(baselineIterations, async () => {
      execFileSync(
        'tpm2_quote',
        [
          '-c',
          kind === 'rsa' ? '0x81010010' : '0x81010011',
          '-l',
          'sha256:0,1,2,3,4,5,6,7,23',
          '-q',
          '00'.repeat(32),
          '-m',
          join(dir, 'm'),
          '-s',
          join(dir, 's'),
          '-o',
          join(dir, 'p'),
        ],
        { env },
      )
    })
    rmSync(dir, { recursive: true, force: true })
    await unserve()
    console.log(
      `${kind.toUpperCase()} AK (${iterations} round trips, ${baselineIterations} tool runs)`,
    )
    console.log(`  attest round trip over libp2p + verify  ${fmt(wire)}`)
    console.log(`  agent quote alone (direct TPM commands)  ${fmt(quoteOnly)}`)
    console.log(`  tpm2_quote (tools, baseline)             ${fmt(tools)}`)
    console.log(
      `  round trip / tpm2_quote at p50: ×${(wire.p50 / tools.p50).toFixed(2)}; libp2p + verify add ${(wire.p50 - quoteOnly.p50).toFixed(2)} ms at p50`,
    )
  }
} finally {
  await pair.stop()
  await tpm.stop()
}
