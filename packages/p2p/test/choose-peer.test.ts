/**
 * Which peer that said "have" gets the want-block (ADR 0044): the spreading rule alone, on
 * made-up loads (the real nodes are in have-first.test.ts).
 */
import { describe, expect, it } from 'vitest'
import { choosePeer, type PeerLoad } from '../src/fetch/have-first/choose-peer.ts'

const fetching = (outstanding: number, failures = 0): PeerLoad => ({
  outstanding,
  failures,
  source: false,
})
const source = (outstanding: number, failures = 0): PeerLoad => ({
  outstanding,
  failures,
  source: true,
})

describe('choosePeer', () => {
  it('takes the peer with the fewest blocks asked of it', () => {
    const loads: Record<string, PeerLoad> = { a: fetching(3), b: fetching(1), c: fetching(2) }
    expect(choosePeer(Object.keys(loads), (p) => loads[p] as PeerLoad)).toBe('b')
  })

  it('asks a source (the owner) only when fetching peers are clearly busier', () => {
    const loads: Record<string, PeerLoad> = { owner: source(0), peer: fetching(5) }
    expect(choosePeer(['owner', 'peer'], (p) => loads[p] as PeerLoad)).toBe('peer')
    loads.peer = fetching(9)
    expect(choosePeer(['owner', 'peer'], (p) => loads[p] as PeerLoad)).toBe('owner')
  })

  it('puts a peer that failed lately after the others, but still picks it when it is the only one', () => {
    const loads: Record<string, PeerLoad> = { liar: fetching(0, 1), owner: source(20) }
    expect(choosePeer(['liar', 'owner'], (p) => loads[p] as PeerLoad)).toBe('owner')
    expect(choosePeer(['liar'], (p) => loads[p] as PeerLoad)).toBe('liar')
  })

  it('keeps the first on ties and gives nothing for no peer', () => {
    expect(choosePeer(['x', 'y'], () => fetching(0))).toBe('x')
    expect(choosePeer([], () => fetching(0))).toBeUndefined()
  })
})
