/**
 * A committee member watching an honest run sees its three phases verified while stranger
 * peers challenge the executor in a loop with grant ids of their own: a stranger's quote does
 * not end a phase hold (phase-hold.ts), so the run still waits for the committee. Real swtpm,
 * real libp2p nodes on loopback; the strangers are the fault injected.
 */
import { randomBytes } from 'node:crypto'
import {
  attestationRecordHash,
  createActivationCache,
  encodeAttestationRecord,
  requestAttestation,
} from '@digicap/attestation'
import {
  createAttestationAgent,
  recordFromAgent,
  serveAttestation,
} from '@digicap/attestation/agent'
import { requestMeasurement } from '@digicap/capsule-core'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { holdPhasesForQuotes } from '../src/node/phase-hold.ts'
import { watchRun } from '../src/node/verifier/watch-run.ts'

const bytes = (n = 32) => new Uint8Array(randomBytes(n))
const STRANGERS = 4
let tpm: Swtpm
let exec: DigicapNode
let verifier: DigicapNode
const strangers: DigicapNode[] = []

beforeAll(async () => {
  tpm = await startSwtpm()
  ;[exec, verifier] = await Promise.all([createDigicapNode(), createDigicapNode()])
  await verifier.libp2p.dial(exec.libp2p.getMultiaddrs())
  for (let i = 0; i < STRANGERS; i++) {
    const n = await createDigicapNode()
    strangers.push(n)
    await n.libp2p.dial(exec.libp2p.getMultiaddrs())
  }
}, 90_000)

afterAll(async () => {
  await Promise.all([exec, verifier, ...strangers].map((n) => n?.stop()))
  await tpm?.stop()
})

describe('phase holds and stranger challengers', () => {
  it('strangers quoting other grant ids do not end the holds: the committee verifies all three phases', async () => {
    const agent = createAttestationAgent({ tcti: tpm.tcti })
    await agent.resetRunPcr()
    const recordBytes = encodeAttestationRecord(await recordFromAgent(agent))
    // As an executor node configured for a committee of 4 (attestHold), one member watching.
    const holding = holdPhasesForQuotes(agent, 20_000, { challengers: 4, graceMs: 3000 })
    const unserve = await serveAttestation(exec.libp2p, holding.served, { record: recordBytes })
    const run = {
      runtimeDigest: bytes(),
      capsuleHeaderHash: bytes(),
      grantId: bytes(),
      ephemeralPublicKey: bytes(),
    }
    const watching = watchRun({
      libp2p: verifier.libp2p,
      peer: exec.libp2p.peerId,
      jobId: run.grantId,
      grant: {
        measurement: requestMeasurement(run.runtimeDigest, run.capsuleHeaderHash),
        ephemeralKey: run.ephemeralPublicKey,
        executor: '0x0000000000000000000000000000000000000000',
      },
      registeredHash: attestationRecordHash(recordBytes),
      activations: createActivationCache(),
      watchMs: 30_000,
      everyMs: 500,
    })
    let stop = false
    let strangerQuotes = 0
    const flood = Promise.all(
      strangers.map(async (s) => {
        while (!stop) {
          await requestAttestation(s.libp2p, exec.libp2p.peerId, {
            grantId: bytes(),
            ephemeralKey: bytes(),
          }).then(
            () => strangerQuotes++,
            () => {},
          )
        }
      }),
    )
    await new Promise((r) => setTimeout(r, 200))
    // The honest executor: a measured run, no work, its clean-up.
    await holding.run.measureRun(run)
    await holding.run.endRun({
      grantId: run.grantId,
      workspaceRemoved: true,
      keyBuffersWiped: true,
    })
    const watched = await watching
    stop = true
    await flood
    await unserve()
    expect(strangerQuotes).toBeGreaterThan(0) // the strangers were answered all along
    expect(watched.phases.map((p) => `${p.phase}:${p.verdict}`)).toEqual([
      'before:verified',
      'during:verified',
      'after:verified',
    ])
  }, 90_000)
})
