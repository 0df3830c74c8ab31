/**
 * Review 118 (attacker): the executor splits an honest committee and is never judged.
 *
 * A member's value is the exact verdict bitmap it saw (bit per run phase, `verdictBits` in the
 * executor's verifier) and an evidence hash over it, and a member prepares only its own value
 * (external validity). The executor decides what each member sees: a phase it does not answer
 * for a member is `missed` there. An executor whose run fails its after-phase check, and that
 * skips the during-phase quote of two of the four members, leaves two members at verdict 3
 * (after failed) and two at verdict 5 (during missed): every honest member saw a fail, none of
 * the two values reaches 2f + 1 = 3 prepares, every view times out, no certificate lands, and
 * `closeTimedOut` refunds the escrow to the executor with no slash and no reputation change
 * (ADR 0027). The cheat costs the executor nothing: no verifier has to collude.
 *
 * Real libp2p nodes on loopback, four honest members, view timeout 500 ms (views 0 … 4 in ~15 s).
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { describe, expect, it } from 'vitest'
import type { PbftDecision } from '../src/index.ts'
import { pbftNetwork, signers } from './pbft-fixtures.ts'

const net = pbftNetwork()
const keys = signers(4)
const statementOf = (verdict: number) => ({
  verdict,
  evidenceHash: keccak_256(new TextEncoder().encode(`evidence-for-${verdict}`)),
})
// A member's statement for any verdict (ADR 0087: it backs the verdict the observations justify).
const evidence = (verdict: number) => statementOf(verdict).evidenceHash

describe('review 118: an executor that shows two halves of the committee two different fails', () => {
  it('four honest members that all saw a failed run still certify a fail', async () => {
    await net.mesh(keys)
    const seen = [3, 3, 5, 5] // after failed (3) / during missed (5): both fails
    const members = await Promise.all(
      seen.map((verdict, i) =>
        net.member(i, { value: statementOf(verdict), evidence, viewTimeout: 500 }),
      ),
    )
    await Promise.all(members.map((m) => m.start()))
    const outcome = await Promise.race([
      Promise.any(members.map((m) => m.replica.verdict)),
      new Promise<'no verdict'>((resolve) => setTimeout(() => resolve('no verdict'), 20_000)),
    ])
    const views = members.map((m) => m.replica.view)
    // On the current code: 'no verdict' after views 0 … 4 (each member only prepares its own
    // bitmap), and the hub's deadline then refunds the cheating executor.
    expect({ outcome, views }).toMatchObject({
      outcome: { verdict: expect.any(Number) } as Partial<PbftDecision>,
    })
    expect((outcome as PbftDecision).verdict).not.toBe(7)
  }, 60_000)

  it('four honest members, two shown the whole run and two with the during quote withheld, still certify', async () => {
    // The free-run variant: the run is honest, the executor withholds one quote from two members
    // (7, 7, 5, 5). No value reaches 3 prepares, the job times out and the fee goes back to the
    // executor: every run free, the owner never paid (ADR 0027 names only "too few verifiers, or a
    // colluding majority" as ways to a timeout).
    await net.mesh(keys)
    const members = await Promise.all(
      [7, 7, 5, 5].map((verdict, i) =>
        net.member(i, { value: statementOf(verdict), evidence, viewTimeout: 500 }),
      ),
    )
    await Promise.all(members.map((m) => m.start()))
    const outcome = await Promise.race([
      Promise.any(members.map((m) => m.replica.verdict)),
      new Promise<'no verdict'>((resolve) => setTimeout(() => resolve('no verdict'), 20_000)),
    ])
    // On the current code: 'no verdict'.
    expect(outcome).toMatchObject({ verdict: expect.any(Number) })
  }, 60_000)
})
