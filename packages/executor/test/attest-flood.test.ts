/**
 * A challenge flood from a few stranger peer ids (6 nodes × 2 loops, real libp2p on loopback,
 * real swtpm) against an executor's `/digicap/attest/1.0.0` (ADR 0067):
 * - a committee member watching an honest run still verifies its three phases (strangers are
 *   held to their rate over time, so the member's challenges get through);
 * - an executor node (openExecutorNode) trusts its configured keyguard: each of its release
 *   challenges passes, as the key releaser's first try.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  attestationRecordHash,
  createActivationCache,
  encodeAttestationRecord,
  requestAttestation,
  requireAttestedRelease,
} from '@digicap/attestation'
import {
  createAttestationAgent,
  recordFromAgent,
  serveAttestation,
} from '@digicap/attestation/agent'
import { requestMeasurement } from '@digicap/capsule-core'
import { type DigicapAddresses, deployDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { parseEther, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadNodeAttestation, openExecutorNode } from '../src/node/index.ts'
import { holdPhasesForQuotes } from '../src/node/phase-hold.ts'
import { watchRun } from '../src/node/verifier/watch-run.ts'

const bytes = (n = 32) => new Uint8Array(randomBytes(n))
const STRANGERS = 6
let tpm: Swtpm
let challenger: DigicapNode
const strangers: DigicapNode[] = []

beforeAll(async () => {
  tpm = await startSwtpm()
  challenger = await createDigicapNode()
  for (let i = 0; i < STRANGERS; i++) strangers.push(await createDigicapNode())
}, 90_000)

afterAll(async () => {
  await Promise.all([challenger, ...strangers].map((n) => n?.stop()))
  await tpm?.stop()
})

/** Dials `to`; many dials at once on loopback are sometimes reset, so each is tried again. */
async function dial(from: Libp2p, to: Libp2p): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await from.dial(to.getMultiaddrs())
      return
    } catch (err) {
      if (attempt >= 20) throw err
      await new Promise((r) => setTimeout(r, 300))
    }
  }
}

/** Each stranger challenges `peer` from two loops, with grant ids of its own, until stopped. */
function flood(peer: PeerId): () => Promise<void> {
  let stop = false
  const loops = strangers.flatMap((s) =>
    [0, 1].map(async () => {
      while (!stop) {
        await requestAttestation(s.libp2p, peer, { grantId: bytes(), ephemeralKey: bytes() }).catch(
          () => new Promise((r) => setTimeout(r, 5)),
        )
      }
    }),
  )
  return async () => {
    stop = true
    await Promise.all(loops)
  }
}

async function provisioned() {
  const agent = createAttestationAgent({ tcti: tpm.tcti })
  await agent.resetRunPcr()
  const recordBytes = encodeAttestationRecord(await recordFromAgent(agent))
  return { agent, recordBytes, registeredHash: attestationRecordHash(recordBytes) }
}

describe('the attest endpoint under a stranger flood', () => {
  it('a watching committee member verifies an honest run’s three phases', async () => {
    const exec = await createDigicapNode()
    try {
      const { agent, recordBytes, registeredHash } = await provisioned()
      const holding = holdPhasesForQuotes(agent, 20_000)
      await serveAttestation(exec.libp2p, holding.served, { record: recordBytes })
      await dial(challenger.libp2p, exec.libp2p)
      for (const s of strangers) await dial(s.libp2p, exec.libp2p)
      const stopFlood = flood(exec.libp2p.peerId)
      const run = {
        runtimeDigest: bytes(),
        capsuleHeaderHash: bytes(),
        grantId: bytes(),
        ephemeralPublicKey: bytes(),
      }
      try {
        await new Promise((r) => setTimeout(r, 1000))
        const watching = watchRun({
          libp2p: challenger.libp2p,
          peer: exec.libp2p.peerId,
          jobId: run.grantId,
          grant: {
            measurement: requestMeasurement(run.runtimeDigest, run.capsuleHeaderHash),
            ephemeralKey: run.ephemeralPublicKey,
            executor: '0x0000000000000000000000000000000000000000',
          },
          registeredHash,
          activations: createActivationCache(),
          watchMs: 30_000,
          everyMs: 500,
        })
        await holding.run.measureRun(run)
        await holding.run.endRun({
          grantId: run.grantId,
          workspaceRemoved: true,
          keyBuffersWiped: true,
        })
        const watched = await watching
        expect(watched.phases.map((p) => `${p.phase}:${p.verdict}`)).toEqual([
          'before:verified',
          'during:verified',
          'after:verified',
        ])
      } finally {
        await stopFlood()
      }
    } finally {
      await exec.stop()
    }
  }, 120_000)

  describe('an executor node', () => {
    let anvil: Anvil
    let addresses: DigicapAddresses
    let dir: string

    beforeAll(async () => {
      anvil = await startAnvil({ accounts: 2 })
      addresses = await deployDigicap(anvil.signers[0] as Wallet, { minStake: parseEther('0.01') })
      dir = await mkdtemp(join(tmpdir(), 'attest-flood-'))
    }, 120_000)

    afterAll(async () => {
      await anvil?.stop()
      if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    })

    it('answers its configured keyguard’s release challenges every time', async () => {
      const { agent } = await provisioned()
      const attestation = await loadNodeAttestation({ agent, recordFile: join(dir, 'record.bin') })
      const keyguardAddr = `${challenger.libp2p.getMultiaddrs()[0]}`
      const en = await openExecutorNode({
        rpcUrl: anvil.rpcUrl,
        chainId: Number(anvil.chainId),
        contracts: addresses,
        libp2pSeed: bytes(),
        accountKey: bytes(),
        attestation,
        keyguardAddrs: [keyguardAddr],
      })
      const exec = en.node.libp2p
      try {
        await dial(challenger.libp2p, exec)
        for (const s of strangers) await dial(s.libp2p, exec)
        const activations = createActivationCache()
        const release = () =>
          requireAttestedRelease(
            challenger.libp2p,
            {
              peer: exec.peerId,
              grantId: bytes(),
              ephemeralKey: bytes(),
              registeredHash: attestation.hash,
              activations,
            },
            { timeout: 5000 },
          )
        await release()
        const stopFlood = flood(exec.peerId)
        try {
          await new Promise((r) => setTimeout(r, 1000))
          const outcomes: string[] = []
          for (let i = 0; i < 20; i++) {
            outcomes.push(
              await release().then(
                () => 'ok',
                (e: unknown) => String((e as { details?: { reason?: string } }).details?.reason),
              ),
            )
          }
          expect(outcomes).toEqual(Array(20).fill('ok'))
        } finally {
          await stopFlood()
        }
      } finally {
        await en.stop()
      }
    }, 120_000)
  })
})
