/**
 * The connection guard's budgets, cooldowns and memory bound, on a manual clock. (Real libp2p
 * nodes: keyguard's fast-path-strangers.test.ts.)
 */
import type { PeerId } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import { type CutReason, createConnectionGuard, hostOf } from '../src/index.ts'

const addr = (code: number, value: string) => ({ getComponents: () => [{ code, value }] })
const ip4 = (ip: string) => addr(4, ip)
const peer = (id: string) => ({ toString: () => id }) as unknown as PeerId

function world(init: Parameters<typeof createConnectionGuard>[0] = {}) {
  let t = 0
  const cuts: { peer: string; reason: CutReason; refused: boolean }[] = []
  const aborted: string[] = []
  const guard = createConnectionGuard(init)({ now: () => t, onCut: (e) => cuts.push(e) })
  const conn = (id: string, ip = '10.0.0.1') => ({
    remotePeer: peer(id),
    remoteAddr: ip4(ip) as never,
    abort: () => aborted.push(id),
  })
  const denied = (id: string, ip = '10.0.0.1') =>
    guard.gater.denyInboundEncryptedConnection(peer(id), { remoteAddr: ip4(ip) } as never)
  return { guard, cuts, aborted, conn, denied, tick: (ms: number) => (t += ms) }
}

describe('connection guard', () => {
  it('cuts a peer over its budget and refuses it until the cooldown ends', () => {
    const w = world({ perPeer: { capacity: 3, refillPerSecond: 1 }, cooldownMs: 10_000 })
    const a = w.conn('A')
    expect([1, 2, 3].map(() => w.guard.admitStream(a))).toEqual(['admit', 'admit', 'admit'])
    expect(w.guard.admitStream(a)).toBe('cut')
    expect(w.aborted).toEqual(['A'])
    expect(w.cuts).toEqual([{ peer: 'A', host: '10.0.0.1', reason: 'peer-budget', refused: false }])
    expect(w.denied('A')).toBe(true)
    // Another peer of the same host is not refused for A's own budget.
    expect(w.denied('B')).toBe(false)
    w.tick(9_999)
    expect(w.denied('A')).toBe(true)
    w.tick(2)
    expect(w.denied('A')).toBe(false)
    expect(w.guard.admitStream(w.conn('A'))).toBe('admit')
    expect(w.guard.stats()).toMatchObject({ admitted: 4, cut: 1, refused: 2 })
  })

  it('adds up the peer ids of one host and refuses the whole host, not other hosts', () => {
    const w = world({
      perPeer: { capacity: 5, refillPerSecond: 1 },
      perHost: { capacity: 8, refillPerSecond: 1 },
    })
    const verdicts = ['p1', 'p2', 'p3', 'p4', 'p5'].flatMap((id) => [
      w.guard.admitStream(w.conn(id)),
      w.guard.admitStream(w.conn(id)),
    ])
    expect(verdicts.filter((v) => v === 'admit')).toHaveLength(8)
    expect(w.cuts.map((c) => c.reason)).toEqual(['host-budget', 'peer-cooling'])
    // A fresh peer id of that host is refused at the handshake; another host's is not.
    expect(w.denied('fresh')).toBe(true)
    expect(w.cuts.at(-1)?.reason).toBe('host-cooling')
    expect(w.denied('fresh', '10.0.0.2')).toBe(false)
    // An open connection of that host is cut at its next stream.
    expect(w.guard.admitStream(w.conn('p1'))).toBe('cut')
  })

  it('never counts, cuts or refuses a trusted peer, whatever its host did', () => {
    const w = world({ perPeer: { capacity: 1, refillPerSecond: 1 }, trustedPeers: ['T'] })
    const executors = new Set(['E'])
    const untrust = w.guard.trust((p) => executors.has(p.toString()))
    w.guard.admitStream(w.conn('S'))
    expect(w.guard.admitStream(w.conn('S'))).toBe('cut')
    for (let i = 0; i < 100; i++) {
      expect(w.guard.admitStream(w.conn('E'))).toBe('admit')
      expect(w.guard.admitStream(w.conn('T'))).toBe('admit')
    }
    expect(w.denied('E')).toBe(false)
    untrust()
    expect(w.guard.admitStream(w.conn('E'))).toBe('admit')
    expect(w.guard.admitStream(w.conn('E'))).toBe('cut')
    expect(w.denied('T')).toBe(false)
  })

  it('holds at most maxTracked cooldowns however many peer ids are cut', () => {
    const w = world({ perPeer: { capacity: 1, refillPerSecond: 1 }, maxTracked: 50 })
    for (let i = 0; i < 1000; i++) {
      const c = w.conn(`p${i}`, `10.1.${i >> 8}.${i & 255}`)
      w.guard.admitStream(c)
      w.guard.admitStream(c)
    }
    expect(w.guard.stats().cut).toBe(1000)
    expect(w.guard.stats().coolingPeers).toBe(50)
    // The most recent are the ones held.
    expect(w.denied('p999', '10.1.3.231')).toBe(true)
  })

  it('counts an IPv6 /64 as one host and an IPv4-mapped address as its IPv4 host', () => {
    expect(hostOf(addr(41, '2001:db8:1:2:aaaa::1'))).toBe('2001:db8:1:2::/64')
    expect(hostOf(addr(41, '2001:0db8:0001:0002:bbbb:cccc:dddd:eeee'))).toBe('2001:db8:1:2::/64')
    expect(hostOf(addr(41, '::1'))).toBe('0:0:0:0::/64')
    expect(hostOf(addr(41, '::ffff:192.0.2.7'))).toBe('192.0.2.7')
    expect(hostOf(ip4('192.0.2.7'))).toBe('192.0.2.7')
  })

  it('refuses budgets and cooldowns that are not positive', () => {
    expect(() => createConnectionGuard({ cooldownMs: 0 })).toThrow(/cooldownMs/)
    expect(() => createConnectionGuard({ maxTracked: -1 })).toThrow(/maxTracked/)
    expect(() => createConnectionGuard({ perHost: { capacity: 0, refillPerSecond: 1 } })()).toThrow(
      /capacity/,
    )
  })
})
