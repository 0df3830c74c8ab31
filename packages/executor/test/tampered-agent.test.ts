/**
 * `skipRunPcrReset` (the demo's tampered executor) on a real swtpm, challenged over real libp2p:
 * after a run whose clean-up skipped the reset, it tells its own executor that PCR 23 is at
 * reset and its answers claim the reset (a log ending in one, the old clean-up report), but the
 * TPM-signed PCR 23 still holds the run, so a verifier's before-check refuses it; the same agent
 * without the tamper passes.
 */
import { randomBytes } from 'node:crypto'
import { requestAttestation, verifyAttestation } from '@digicap/attestation'
import {
  type AttestationAgent,
  createAttestationAgent,
  serveAttestation,
} from '@digicap/attestation/agent'
import { DigicapError } from '@digicap/capsule-core'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { skipRunPcrReset } from '../src/node/index.ts'

const bytes = () => new Uint8Array(randomBytes(32))
let tpm: Swtpm
let agent: AttestationAgent
let nodes: DigicapNode[] = []
let keys: Awaited<ReturnType<AttestationAgent['provision']>>

beforeAll(async () => {
  tpm = await startSwtpm()
  agent = createAttestationAgent({ tcti: tpm.tcti })
  keys = await agent.provision()
  await agent.resetRunPcr()
  nodes = await Promise.all([createDigicapNode(), createDigicapNode()])
  await nodes[0]!.libp2p.dial(nodes[1]!.libp2p.getMultiaddrs()[0]!)
}, 90_000)

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()))
  await tpm?.stop()
})

describe('skipRunPcrReset: a tampered executor', () => {
  it('claims the clean-up reset it skipped; the TPM-signed PCR 23 gives it away', async () => {
    const tampered = skipRunPcrReset(agent)
    const [verifier, executor] = nodes as [DigicapNode, DigicapNode]
    const unserve = await serveAttestation(executor.libp2p, tampered)
    const challenge = { grantId: bytes(), ephemeralKey: bytes() }
    const ask = () => requestAttestation(verifier.libp2p, executor.libp2p.peerId, challenge)
    const verdict = async () => {
      const answer = await ask()
      try {
        verifyAttestation(answer, {
          phase: 'before',
          attestationKey: keys,
          bootPcrs: new Map([...answer.quote.pcrValues].filter(([i]) => i !== 23)),
        })
        return { answer, verdict: 'verified' }
      } catch (err) {
        return { answer, verdict: err instanceof DigicapError ? err.code : String(err) }
      }
    }
    try {
      // Untampered until a clean-up: its before-evidence passes.
      expect(tampered.skippedReset).toBe(false)
      expect((await verdict()).verdict).toBe('verified')
      // A run, then a clean-up that skips the reset.
      const previous = bytes()
      await tampered.measureRun({
        runtimeDigest: bytes(),
        capsuleHeaderHash: bytes(),
        grantId: previous,
        ephemeralPublicKey: bytes(),
      })
      await tampered.endRun({ grantId: previous, workspaceRemoved: true, keyBuffersWiped: true })
      expect(tampered.skippedReset).toBe(true)
      expect((await agent.readRunPcr()).some((b) => b !== 0)).toBe(true) // the TPM: measured
      expect((await tampered.readRunPcr()).every((b) => b === 0)).toBe(true) // its claim: reset
      const { answer, verdict: v } = await verdict()
      expect(answer.eventLog.at(-1)?.kind).toBe('reset') // it claims the reset...
      expect(answer.cleanup?.grantId).toEqual(previous)
      expect(v).toBe('QUOTE_EVENT_LOG') // ...but its log does not replay to the quoted PCR 23
    } finally {
      await unserve()
      await agent.resetRunPcr()
    }
  }, 60_000)
})
