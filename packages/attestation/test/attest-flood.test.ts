/**
 * A challenge flood from a few stranger peer ids (6 nodes × 2 loops, real libp2p on loopback,
 * real swtpm) does not shut the executor's trusted challengers out of `/digicap/attest/1.0.0`:
 * its keyguard, a trusted challenger, passes `requireAttestedRelease` every time, and each
 * stranger gets no more quotes than its rate over time (DEFAULT_ATTEST_STRANGER_RATE).
 */
import { randomBytes } from 'node:crypto'
import { type Swtpm, startSwtpm } from '@digicap/tpm/testing'
import type { Libp2p } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createAttestationAgent,
  DEFAULT_ATTEST_STRANGER_RATE,
  serveAttestation,
} from '../src/agent/index.ts'
import {
  attestationRecordHash,
  createActivationCache,
  encodeAttestationRecord,
  requestAttestation,
  requireAttestedRelease,
} from '../src/index.ts'
import { createNode } from './helpers/nodes.ts'

const bytes = (n = 32) => new Uint8Array(randomBytes(n))
const STRANGERS = 6
let tpm: Swtpm
let exec: Libp2p
let keyguard: Libp2p
const strangers: Libp2p[] = []

/** Dials `exec`; many dials at once on loopback are sometimes reset, so each is tried again. */
async function dialExec(node: Libp2p): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await node.dial(exec.getMultiaddrs())
      return
    } catch (err) {
      if (attempt >= 20) throw err
      await new Promise((r) => setTimeout(r, 300))
    }
  }
}

beforeAll(async () => {
  tpm = await startSwtpm()
  ;[exec, keyguard] = await Promise.all([createNode(), createNode()])
  for (let i = 0; i < STRANGERS; i++) strangers.push(await createNode())
  await dialExec(keyguard)
  for (const s of strangers) await dialExec(s)
}, 90_000)

afterAll(async () => {
  await Promise.all([exec, keyguard, ...strangers].map((n) => n?.stop()))
  await tpm?.stop()
})

describe('serveAttestation under a stranger flood', () => {
  it('the trusted keyguard is attested every time, and each stranger only at its rate', async () => {
    const agent = createAttestationAgent({ tcti: tpm.tcti })
    const keys = await agent.provision()
    await agent.resetRunPcr()
    const q = await agent.quote({ nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() })
    const recordBytes = encodeAttestationRecord({
      ...keys,
      bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)),
    })
    const registeredHash = attestationRecordHash(recordBytes)
    const keyguardPeer = keyguard.peerId.toString()
    const unserve = await serveAttestation(exec, agent, {
      record: recordBytes,
      trustedChallengers: (peer) => peer === keyguardPeer,
    })
    const activations = createActivationCache()
    const release = () =>
      requireAttestedRelease(
        keyguard,
        { peer: exec.peerId, grantId: bytes(), ephemeralKey: bytes(), registeredHash, activations },
        { timeout: 5000 },
      )
    await release() // activates the record once, before the flood
    let stop = false
    const answered = new Map<number, number>()
    const started = performance.now()
    const loops = strangers.flatMap((s, i) =>
      [0, 1].map(async () => {
        while (!stop) {
          await requestAttestation(s, exec.peerId, {
            grantId: bytes(),
            ephemeralKey: bytes(),
          }).then(
            () => answered.set(i, (answered.get(i) ?? 0) + 1),
            () => new Promise((r) => setTimeout(r, 5)),
          )
        }
      }),
    )
    try {
      await new Promise((r) => setTimeout(r, 1000))
      // One try each, as the key releaser's first attempt: none may be turned away.
      const outcomes: string[] = []
      for (let i = 0; i < 20; i++) {
        outcomes.push(
          await release().then(
            () => 'ok',
            (e: unknown) =>
              `${(e as { code?: string }).code}:${JSON.stringify((e as { details?: unknown }).details)}`,
          ),
        )
      }
      expect(outcomes).toEqual(Array(20).fill('ok'))
    } finally {
      stop = true
      await Promise.all(loops)
      await unserve()
    }
    const seconds = (performance.now() - started) / 1000
    const most =
      DEFAULT_ATTEST_STRANGER_RATE.capacity + DEFAULT_ATTEST_STRANGER_RATE.refillPerSecond * seconds
    expect(answered.size).toBeGreaterThan(0) // strangers are still answered, at their rate
    for (const n of answered.values()) expect(n).toBeLessThanOrEqual(Math.ceil(most) + 1)
  }, 120_000)
})
