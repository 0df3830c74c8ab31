/**
 * A keyguard given the TPM makers' CA certificates (`attestation.ekRoots`, ADR 0069) trusts an
 * executor's quotes only when its record's EK was certified by one of them. Real swtpms (one
 * manufactured with an EK certificate, one without: an EK anyone could have made) behind real
 * attestation agents, libp2p on loopback. The TPM without a certificate answers every challenge
 * truly and is still refused, `ek-untrusted:missing`, before any credential is made.
 */
import { randomBytes } from 'node:crypto'
import { attestationRecordHash, encodeAttestationRecord } from '@digicap/attestation'
import {
  type AttestationAgent,
  createAttestationAgent,
  recordFromAgent,
  serveAttestation,
} from '@digicap/attestation/agent'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { hexlify } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { attestationGate, NotAttestedError, notAttestedReason, parseEkRoots } from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

const bytes = (n = 32) => new Uint8Array(randomBytes(n))

describe('attestationGate with EK roots', () => {
  let certified: Swtpm
  let plain: Swtpm
  let keyguardNode: DigicapNode
  let executorNode: DigicapNode
  beforeAll(async () => {
    ;[certified, plain, keyguardNode, executorNode] = await Promise.all([
      startSwtpm({ ekCertificate: true }),
      startSwtpm(),
      createDigicapNode({ pubsub: false }),
      createDigicapNode({ pubsub: false }),
    ])
    await keyguardNode.libp2p.dial(multiaddr(executorNode.multiaddrs()[0] as string))
  }, 120_000)
  afterAll(async () => {
    await Promise.all([keyguardNode?.stop(), executorNode?.stop()])
    await Promise.all([certified?.stop(), plain?.stop()])
  })

  it('passes the certified TPM and refuses the uncertified one before any credential', async () => {
    const gate = attestationGate({ ekRoots: parseEkRoots(certified.ekRoots as string) })({
      // the chain is read by `requirement`, not by `attest`
      chain: {} as never,
      libp2p: keyguardNode.libp2p,
    })
    const challenge = () => ({
      peer: executorNode.libp2p.peerId,
      grantId: hexlify(bytes()),
      ephemeralKey: bytes(),
    })
    const attestWith = async (agent: AttestationAgent) => {
      await agent.resetRunPcr()
      const record = await recordFromAgent(agent)
      const stop = await serveAttestation(executorNode.libp2p, agent, {
        record: encodeAttestationRecord(record),
      })
      try {
        await gate.attest(
          { executor: hexlify(bytes(20)), registeredHash: hexlify(attestationRecordHash(record)) },
          challenge(),
        )
        return 'attested'
      } catch (err) {
        expect(err).toBeInstanceOf(NotAttestedError)
        return notAttestedReason(err as NotAttestedError)
      } finally {
        await stop()
      }
    }
    expect(await attestWith(createAttestationAgent({ tcti: certified.tcti }))).toBe('attested')
    expect(await attestWith(createAttestationAgent({ tcti: plain.tcti }))).toBe(
      'ek-untrusted:missing',
    )
  }, 60_000)
})
