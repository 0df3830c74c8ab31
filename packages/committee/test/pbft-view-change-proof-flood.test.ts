/**
 * Review 118 (attacker): one Byzantine member makes an honest member pay a full secp256k1
 * recovery for every entry of a view change's "prepared" proof, on every frame.
 *
 * A view change that claims a prepared value carries up to PBFT_MAX_PROOF (64) prepares, and
 * `#preparedProofHolds` recovers each one (no expected signer, so a full recovery) and keeps going
 * past an entry that recovers to a non-member ("one bad entry does not void the others"). The
 * refused frame leaves no state, so the same view change with fresh junk entries is refused again
 * at full price: ~11 KiB of junk buys 64 recoveries (~1.5 ms each, ~100 ms of CPU), with no rate
 * limit per member. These tests send the frames over a real libp2p stream and count the
 * receiver's signature checks (`signatureChecks()`).
 */
import { randomBytes } from 'node:crypto'
import type { DigicapSigner } from '@digicap/capsule-core'
import { encodeFrame, encodePbftMessage, PBFT_PROTOCOL, type PbftVote } from '@digicap/protocol'
import { describe, expect, it } from 'vitest'
import { signVote } from '../src/index.ts'
import { signatureChecks } from '../src/pbft/signature-check.ts'
import { domain, jobId, PASS, pbftNetwork, signers } from './pbft-fixtures.ts'

const net = pbftNetwork()
const keys = signers(4)

/** A low-s, v = 27 signature of random r and s: it passes the shape check and recovers to junk. */
function junkSignature(): Uint8Array {
  const sig = new Uint8Array(65)
  sig.set(randomBytes(32), 0)
  const s = randomBytes(32)
  s[0] = (s[0] as number) & 0x3f // below n/2
  sig.set(s, 32)
  sig[64] = 27
  return sig
}

describe('review 118: a view change carrying a junk prepared proof', () => {
  it('costs the receiver at most a quorum of signature checks per frame', async () => {
    const { mesh } = await net.mesh(keys)
    // The victim, member 1 (not the attacker's view-1 leader seat); the attacker is member 3.
    const victim = await net.member(1)
    await victim.start()
    const attacker = mesh[3]
    const victimNode = mesh[1]
    if (attacker === undefined || victimNode === undefined) throw new Error('mesh')
    // The attacker's own view change for view 1, claiming it prepared PASS in view 0.
    const viewChange = await signVote(keys[3] as DigicapSigner, domain, {
      phase: 'view-change',
      jobId,
      view: 1n,
      preparedView: 1n,
      ...PASS,
    })
    const junkProof = (): PbftVote[] =>
      Array.from({ length: 64 }, () => ({
        phase: 'prepare' as const,
        jobId,
        view: 0n,
        preparedView: 0n,
        ...PASS,
        signature: junkSignature(),
      }))
    const FRAMES = 20
    const frames = Array.from({ length: FRAMES }, () =>
      encodeFrame(encodePbftMessage({ vote: viewChange, proof: junkProof() })),
    )
    const before = signatureChecks()
    const stream = await attacker.dialProtocol(victimNode.peerId, PBFT_PROTOCOL)
    for (const f of frames) stream.send(f)
    await expect
      .poll(() => victim.transport.stats.refused['PBFT_VOTE:proof'] ?? 0, { timeout: 45_000 })
      .toBe(FRAMES)
    const perFrame = (signatureChecks() - before) / FRAMES
    // The view change's own signature plus, at worst, one check per quorum entry (2f + 1 = 3).
    // On the current code: 65 per frame (the view change + all 64 junk entries).
    expect(perFrame).toBeLessThanOrEqual(4)
    await stream.close().catch(() => {})
  }, 90_000)
})
