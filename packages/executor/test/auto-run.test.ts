import type { CapsuleAnnouncement } from '@digicap/p2p'
import { describe, expect, it } from 'vitest'
import { type AutoRunEvent, autoRunner, type RunCapsuleResult } from '../src/index.ts'

const REGISTRY = '0x00000000000000000000000000000000000000aa'
const ann = (cid: string, over: Partial<CapsuleAnnouncement> = {}): CapsuleAnnouncement => ({
  capsuleId: `0x${'11'.repeat(32)}`,
  cid,
  owner: `0x${'22'.repeat(20)}`,
  registry: REGISTRY,
  chainId: 31337,
  keyguardPeer: 'kg',
  ...over,
})

/** An executor whose runs finish only when the test says so (fault injection: a slow run). */
function gatedExecutor() {
  const calls: string[] = []
  let active = 0
  let maxActive = 0
  let open: () => void = () => {}
  let gate = new Promise<void>((r) => {
    open = r
  })
  return {
    calls,
    get maxActive() {
      return maxActive
    },
    release() {
      open()
      gate = Promise.resolve()
    },
    executor: {
      async runCapsule(cid: string): Promise<RunCapsuleResult> {
        calls.push(cid)
        active++
        maxActive = Math.max(maxActive, active)
        await gate
        active--
        if (cid.startsWith('bad')) throw new Error('no such capsule')
        return { runId: cid } as unknown as RunCapsuleResult
      },
    },
  }
}

const node = {} as never
const settle = async (ms = 20) => new Promise((r) => setTimeout(r, ms))

describe('autoRunner', () => {
  it('1000 announcements from 1000 announcers: queue, seen set and announcer table stay bounded; the queued ones all run, one at a time', async () => {
    const g = gatedExecutor()
    const events: AutoRunEvent[] = []
    const auto = autoRunner({
      chainId: 31337,
      registry: REGISTRY.toUpperCase().replace('0X', '0x'),
      maxQueued: 8,
      maxSeen: 50,
      maxAnnouncers: 100,
      onEvent: (e) => events.push(e),
    })({ node, executor: g.executor })
    const heap0 = process.memoryUsage().heapUsed
    let maxQueued = 0
    for (let i = 0; i < 1000; i++) {
      auto.offer(ann(`cid-${i}`), `peer-${i}`)
      maxQueued = Math.max(maxQueued, auto.stats().queued)
    }
    const s = auto.stats()
    expect(maxQueued).toBe(8)
    expect(s).toEqual({ queued: 8, running: 1, seen: 9, announcers: 100 })
    expect(events.filter((e) => e.type === 'ignored' && e.reason === 'queue-full').length).toBe(
      1000 - 9,
    )
    // bounded: the spam did not pile up state (generous bound, GC-independent)
    expect(process.memoryUsage().heapUsed - heap0).toBeLessThan(64 * 1024 * 1024)
    g.release()
    for (let i = 0; i < 50 && auto.stats().running + auto.stats().queued > 0; i++) await settle()
    expect(g.calls).toEqual(Array.from({ length: 9 }, (_, i) => `cid-${i}`))
    expect(g.maxActive).toBe(1)
    expect(events.filter((e) => e.type === 'ran').length).toBe(9)
    // a dropped announcement is not remembered: it can run when announced again
    expect(auto.offer(ann('cid-500'), 'peer-500')).toBe(true)
    await auto.stop()
  })

  it('one spamming announcer is rate limited; a valid announcement from another peer still runs', async () => {
    const g = gatedExecutor()
    g.release()
    const events: AutoRunEvent[] = []
    const auto = autoRunner({
      chainId: 31337,
      registry: REGISTRY,
      perAnnouncerLimit: 5,
      maxQueued: 100,
      onEvent: (e) => events.push(e),
    })({ node, executor: g.executor })
    for (let i = 0; i < 1000; i++) auto.offer(ann(`bad-${i}`), 'spammer')
    expect(auto.offer(ann('good'), 'honest')).toBe(true)
    for (let i = 0; i < 50 && auto.stats().running + auto.stats().queued > 0; i++) await settle()
    expect(g.calls).toEqual(['bad-0', 'bad-1', 'bad-2', 'bad-3', 'bad-4', 'good'])
    const reasons = events.flatMap((e) => (e.type === 'ignored' ? [e.reason] : []))
    expect(reasons.length).toBe(995)
    expect(new Set(reasons)).toEqual(new Set(['rate-limited']))
    expect(events.filter((e) => e.type === 'failed').length).toBe(5)
    expect(events.find((e) => e.type === 'ran')).toMatchObject({ cid: 'good' })
    await auto.stop()
  })

  it('ignores other chains, other registries and duplicates; refuses after stop; rejects bad limits', async () => {
    const g = gatedExecutor()
    g.release()
    const events: AutoRunEvent[] = []
    const auto = autoRunner({ chainId: 31337, registry: REGISTRY, onEvent: (e) => events.push(e) })(
      { node, executor: g.executor },
    )
    expect(auto.offer(ann('a', { chainId: 1 }), 'p')).toBe(false)
    expect(auto.offer(ann('a', { registry: `0x${'bb'.repeat(20)}` }), 'p')).toBe(false)
    expect(auto.offer(ann('a'), 'p')).toBe(true)
    expect(auto.offer(ann('a'), 'q')).toBe(false)
    await auto.stop()
    expect(auto.offer(ann('b'), 'p')).toBe(false)
    expect(events.flatMap((e) => (e.type === 'ignored' ? [e.reason] : []))).toEqual([
      'other-chain',
      'other-registry',
      'duplicate',
      'stopped',
    ])
    expect(g.calls).toEqual(['a'])
    expect(() => autoRunner({ chainId: 1, registry: REGISTRY, maxQueued: 0 })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })
})
