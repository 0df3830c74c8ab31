/**
 * A committee that starts watching job G2 while the same honest executor is still inside run G1
 * (PCR 23 measured with G1's grant) waits for G1 to end instead of taking G1's run as G2's
 * during: G2's before, during and after are all verified. Real swtpm, real libp2p on loopback.
 */
import { randomBytes } from 'node:crypto'
import {
  attestationRecordHash,
  createActivationCache,
  encodeAttestationRecord,
} from '@digicap/attestation'
import { createAttestationAgent, serveAttestation } from '@digicap/attestation/agent'
import { requestMeasurement } from '@digicap/capsule-core'
import { startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode } from '@digicap/p2p'
import { expect, it } from 'vitest'
import { holdPhasesForQuotes } from '../src/node/phase-hold.ts'
import { watchRun } from '../src/node/verifier/watch-run.ts'

const bytes = (n = 32) => new Uint8Array(randomBytes(n))
const values = () => ({
  runtimeDigest: bytes(),
  capsuleHeaderHash: bytes(),
  grantId: bytes(),
  ephemeralPublicKey: bytes(),
})

it('a watch started while another grant’s run holds PCR 23 waits for it and verifies its own three phases', async () => {
  const tpm = await startSwtpm()
  const [exec, verifier] = await Promise.all([createDigicapNode(), createDigicapNode()])
  try {
    await verifier.libp2p.dial(exec.libp2p.getMultiaddrs())
    const agent = createAttestationAgent({ tcti: tpm.tcti })
    const keys = await agent.provision()
    await agent.resetRunPcr()
    const q = await agent.quote({ nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() })
    const recordBytes = encodeAttestationRecord({
      ...keys,
      bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)),
    })
    const holding = holdPhasesForQuotes(agent, 20_000)
    await serveAttestation(exec.libp2p, holding.served, { record: recordBytes })
    const g1 = values()
    const g2 = values()
    // G1 is running (nobody watches it) when G2's committee starts; G1 ends 1 s later, then G2.
    await agent.measureRun(g1)
    const executor = (async () => {
      await new Promise((r) => setTimeout(r, 1000))
      await agent.endRun({ grantId: g1.grantId, workspaceRemoved: true, keyBuffersWiped: true })
      await holding.run.measureRun(g2)
      await holding.run.endRun({
        grantId: g2.grantId,
        workspaceRemoved: true,
        keyBuffersWiped: true,
      })
    })()
    const watched = await watchRun({
      libp2p: verifier.libp2p,
      peer: exec.libp2p.peerId,
      jobId: g2.grantId,
      grant: {
        measurement: requestMeasurement(g2.runtimeDigest, g2.capsuleHeaderHash),
        ephemeralKey: g2.ephemeralPublicKey,
        executor: '0x0000000000000000000000000000000000000000',
      },
      registeredHash: attestationRecordHash(recordBytes),
      activations: createActivationCache(),
      watchMs: 15_000,
      everyMs: 200,
    })
    await executor
    expect(watched.phases.map((p) => `${p.phase}:${p.verdict}`)).toEqual([
      'before:verified',
      'during:verified',
      'after:verified',
    ])
  } finally {
    await Promise.all([exec.stop(), verifier.stop()])
    await tpm.stop()
  }
}, 90_000)
