/**
 * A committee member given the TPM makers' CA certificates (`verifier.ekRoots`, ADR 0069)
 * records the before phase `not-activated` for an executor whose EK no trusted maker certified,
 * and never trusts its quotes; the same executor on a manufactured TPM is verified. Real swtpms
 * behind real attestation agents, real libp2p on loopback.
 */
import { randomBytes } from 'node:crypto'
import {
  attestationRecordHash,
  createActivationCache,
  encodeAttestationRecord,
  parseEkRoots,
} from '@digicap/attestation'
import {
  type AttestationAgent,
  createAttestationAgent,
  recordFromAgent,
  serveAttestation,
} from '@digicap/attestation/agent'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { watchRun } from '../src/node/verifier/watch-run.ts'

const bytes = (n = 32) => new Uint8Array(randomBytes(n))

describe('watchRun with EK roots', () => {
  let certified: Swtpm
  let plain: Swtpm
  let verifier: DigicapNode
  let executor: DigicapNode
  beforeAll(async () => {
    ;[certified, plain, verifier, executor] = await Promise.all([
      startSwtpm({ ekCertificate: true }),
      startSwtpm(),
      createDigicapNode({ pubsub: false }),
      createDigicapNode({ pubsub: false }),
    ])
    await verifier.libp2p.dial(multiaddr(executor.multiaddrs()[0] as string))
  }, 120_000)
  afterAll(async () => {
    await Promise.all([verifier?.stop(), executor?.stop()])
    await Promise.all([certified?.stop(), plain?.stop()])
  })

  it('refuses the before phase of an uncertified EK, even once activated without roots, and verifies a certified one', async () => {
    const ekRoots = parseEkRoots(certified.ekRoots as string)
    // one activation cache, as one verifier process has
    const activations = createActivationCache()
    // `null`: a watch without roots
    const beforeOf = async (agent: AttestationAgent, roots: typeof ekRoots | null = ekRoots) => {
      await agent.resetRunPcr()
      const record = await recordFromAgent(agent)
      const stop = await serveAttestation(executor.libp2p, agent, {
        record: encodeAttestationRecord(record),
      })
      try {
        const watched = await watchRun({
          libp2p: verifier.libp2p,
          peer: executor.libp2p.peerId,
          jobId: bytes(),
          grant: { measurement: bytes(), ephemeralKey: bytes(), executor: `0x${'11'.repeat(20)}` },
          registeredHash: attestationRecordHash(record),
          activations,
          ...(roots === null ? {} : { ekRoots: roots }),
          // the run never starts: the before phase is all this watch can see
          watchMs: 3_000,
          everyMs: 200,
        })
        return watched.phases.find((v) => v.phase === 'before')?.verdict
      } finally {
        await stop()
      }
    }
    expect(await beforeOf(createAttestationAgent({ tcti: certified.tcti }))).toBe('verified')
    // the uncertified TPM is activated (and cached) by a watch without roots; one with roots
    // still refuses it: the certificate is checked before the cache
    const plainAgent = createAttestationAgent({ tcti: plain.tcti })
    expect(await beforeOf(plainAgent, null)).toBe('verified')
    expect(await beforeOf(plainAgent)).toBe('not-activated')
  }, 60_000)
})
