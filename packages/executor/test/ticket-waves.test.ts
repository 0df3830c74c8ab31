/**
 * The verifier's side of ADR 0065 (`waitForWave`, `cutoffHistory`) against a scripted chain: the
 * chain's answers are the fault injected (seats already full of better tickets, jobs still open,
 * an RPC that fails). The contract's `cutoffOf` and a wave run with real tickets are tested on
 * anvil in `@digicap/committee` (committee-onchain.test.ts); the real `ethersVerifierChain` runs
 * this path in every job of verifier-committee.test.ts.
 */
import { randomBytes } from 'node:crypto'
import { sortitionScore } from '@digicap/committee'
import { describe, expect, it } from 'vitest'
import { cutoffHistory, waitForWave } from '../src/node/verifier/ticket-waves.ts'

type Cutoff = { full: boolean; score: bigint; closed: boolean }
const SELF = '0x00000000000000000000000000000000000000aa' as const

function scriptedChain(weight: bigint, cutoffs: Map<string, Cutoff>) {
  const reads: string[] = []
  return {
    reads,
    chain: {
      weight: async () => weight,
      cutoff: async (jobId: Uint8Array) => {
        const id = Buffer.from(jobId).toString('hex')
        reads.push(id)
        const c = cutoffs.get(id)
        if (c === undefined) throw new Error('RPC down')
        return c
      },
    },
  }
}

const job = () => new Uint8Array(randomBytes(32))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

describe('cutoffHistory', () => {
  it('learns only from closed full committees, keeps waiting on open ones, survives a failed read', async () => {
    const cutoffs = new Map<string, Cutoff>()
    const { chain, reads } = scriptedChain(1n, cutoffs)
    const history = cutoffHistory(chain)
    const [closed, open, partial, failing] = [job(), job(), job(), job()]
    cutoffs.set(hex(closed), { full: true, score: 500n, closed: true })
    cutoffs.set(hex(open), { full: true, score: 1n, closed: false })
    cutoffs.set(hex(partial), { full: false, score: 0n, closed: true })
    for (const j of [closed, open, partial, failing]) history.watch(j)
    expect(await history.reference()).toBe(500n)
    expect(history.size).toBe(1)
    // The open job and the failed read are asked again; the closed ones are not.
    reads.length = 0
    cutoffs.set(hex(open), { full: true, score: 700n, closed: true })
    expect(await history.reference()).toBe(500n) // lower median of [500, 700]
    expect(reads.sort()).toEqual([hex(open), hex(failing)].sort())
    expect(history.size).toBe(2)
  })

  it('keeps the last 16 cut-offs and waits on at most 64 jobs', async () => {
    const cutoffs = new Map<string, Cutoff>()
    const { chain, reads } = scriptedChain(1n, cutoffs)
    const history = cutoffHistory(chain)
    for (let i = 0; i < 40; i++) {
      const j = job()
      cutoffs.set(hex(j), { full: true, score: BigInt(1000 + i), closed: true })
      history.watch(j)
      await history.reference()
    }
    expect(history.size).toBe(16)
    expect(await history.reference()).toBe(1031n) // median of 1024 … 1039
    for (let i = 0; i < 100; i++) history.watch(job()) // never answered
    reads.length = 0
    await history.reference()
    expect(reads.length).toBe(64)
  })
})

describe('waitForWave', () => {
  /** A ticket output whose score under `weight` is known. */
  const beta = new Uint8Array(32).fill(0x40)
  const weight = 10n ** 18n
  const score = sortitionScore(beta, weight)

  async function plan(reference: bigint | undefined, now: Cutoff, w = weight) {
    const cutoffs = new Map<string, Cutoff>()
    const { chain } = scriptedChain(w, cutoffs)
    const history = cutoffHistory(chain)
    if (reference !== undefined) {
      const past = job()
      cutoffs.set(hex(past), { full: true, score: reference, closed: true })
      history.watch(past)
    }
    const jobId = job()
    cutoffs.set(hex(jobId), now)
    const waited: number[] = []
    const result = await waitForWave({
      chain,
      self: SELF,
      jobId,
      beta,
      grantBlock: 100,
      lastBlock: 120,
      history,
      untilBlock: async (b) => {
        waited.push(b)
      },
    })
    return { result, waited }
  }

  it('a fresh node sends at once (wave 0, no wait)', async () => {
    const { result, waited } = await plan(undefined, { full: false, score: 0n, closed: false })
    expect(result).toEqual({ send: true, wave: 0 })
    expect(waited).toEqual([])
  })

  it('a ticket 5× the reference waits for wave 2 (head at grant + 2), then sends into free seats', async () => {
    const { result, waited } = await plan(score / 5n, { full: false, score: 0n, closed: false })
    expect(result).toEqual({ send: true, wave: 2 })
    expect(waited).toEqual([101])
  })

  it('is left unsent once the seats are full of scores at or below its own', async () => {
    for (const last of [score, score - 1n]) {
      const { result } = await plan(score / 5n, { full: true, score: last, closed: false })
      expect(result).toEqual({ send: false, wave: 2, cutoff: last, score })
    }
    const { result } = await plan(score / 5n, { full: true, score: score + 1n, closed: false })
    expect(result).toEqual({ send: true, wave: 2 })
  })

  it('a failed read sends as before waves: the weight unreadable at once, the cut-off unreadable at its wave', async () => {
    const history = cutoffHistory({ cutoff: async () => ({ full: true, score: 1n, closed: true }) })
    history.watch(job())
    const common = {
      self: SELF,
      jobId: job(),
      beta,
      grantBlock: 100,
      lastBlock: 120,
      history,
      untilBlock: async () => {},
    }
    const down = async (): Promise<never> => {
      throw new Error('RPC down')
    }
    const noWeight = await waitForWave({
      ...common,
      chain: { weight: down, cutoff: async () => ({ full: true, score: 0n, closed: false }) },
    })
    expect(noWeight).toEqual({ send: true, wave: 0 })
    const noCutoff = await waitForWave({
      ...common,
      chain: { weight: async () => weight, cutoff: down },
    })
    // reference 1: the ticket goes in the last of the 8 waves of a 20-block window, then sends
    // without knowing the seats
    expect(noCutoff).toEqual({ send: true, wave: 7 })
  })

  it('a node with no weight sends at once, so the chain says why it is refused', async () => {
    const { result, waited } = await plan(1n, { full: true, score: 1n, closed: false }, 0n)
    expect(result).toEqual({ send: true, wave: 0 })
    expect(waited).toEqual([])
  })
})
