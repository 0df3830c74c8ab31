import { InvalidArgumentError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import { createStreamGate } from '../src/index.ts'

describe('stream gate', () => {
  it('turns a peer away past its own limit, without touching the others', () => {
    const gate = createStreamGate({ maxPerPeer: 2, maxTotal: 10 })
    const evicted: string[] = []
    expect(gate.admit('a', () => evicted.push('a1'))).toBeDefined()
    expect(gate.admit('a', () => evicted.push('a2'))).toBeDefined()
    expect(gate.admit('a', () => evicted.push('a3'))).toBeUndefined()
    expect(gate.admit('b', () => evicted.push('b1'))).toBeDefined()
    expect(gate.stats()).toMatchObject({ active: 3, peers: 2, refused: 1, evicted: 0 })
    expect(evicted).toEqual([])
  })

  it('when full, evicts the oldest exchange still reading; never one whose request is in', () => {
    const gate = createStreamGate({ maxPerPeer: 5, maxTotal: 3 })
    const evicted: string[] = []
    const t1 = gate.admit('p1', () => evicted.push('p1'))!
    gate.admit('p2', () => evicted.push('p2'))
    gate.admit('p3', () => evicted.push('p3'))
    t1.read() // p1's request is in: it is working, not holding a half frame
    const t4 = gate.admit('p4', () => evicted.push('p4'))
    expect(t4).toBeDefined()
    expect(evicted).toEqual(['p2'])
    expect(gate.stats()).toMatchObject({ active: 3, peakActive: 3, evicted: 1 })
    // everyone left has read its request: a newcomer is turned away
    t4!.read()
    gate.admit('p5', () => evicted.push('p5'))?.read()
    expect(evicted).toEqual(['p2', 'p3'])
    expect(gate.admit('p6', () => evicted.push('p6'))).toBeUndefined()
    expect(gate.stats().refused).toBe(1)
    // a released slot is free again; release is idempotent
    t1.release()
    t1.release()
    expect(gate.stats().active).toBe(2)
    expect(gate.admit('p6', () => {})).toBeDefined()
  })

  it('rejects limits that are not positive integers', () => {
    expect(() => createStreamGate({ maxPerPeer: 0, maxTotal: 1 })).toThrow(InvalidArgumentError)
    expect(() => createStreamGate({ maxPerPeer: 1, maxTotal: 1.5 })).toThrow(InvalidArgumentError)
  })
})
