/**
 * Anyone can try to close the fast path: many peer ids (free) sending requests signed by fresh
 * keys for a capsule the keyguard holds, forged requests naming the registered executor, and
 * streams holding half a frame. The registered executor must still be served, strangers must
 * not fill its replay memory, and their RPC lookups must stay within the global budget.
 * Real anvil and libp2p on loopback; the chain client is only wrapped to count lookups.
 */
import { fastPathProtocol, request } from '@digicap/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { outcome } from './helpers/access-request.ts'
import { startFlood } from './helpers/flood.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { countingLookups, until } from './helpers/world.ts'

const STRANGERS = 20
/**
 * The executor's pace during the flood: 9 requests a second for 4 s, under its own quota
 * (30 burst, 10 a second) and well over a stranger's bucket (10 burst, 5 a second).
 */
const PACE_PER_SECOND = 9
const PACED = 36
/** One capsule per paced request (a run of one capsule waits for the audit of its last run). */
const CAPSULES = PACED

let w: KeyguardWorld
let capsuleId: string
let capsules: string[]
let lookups = 0
const audited = () => w.events.filter((e) => e.type === 'audit-recorded').length

beforeAll(async () => {
  w = await keyguardWorld({
    capsules: CAPSULES,
    chainClient: (real) =>
      countingLookups(real, () => {
        lookups++
      }),
    keyguard: {
      pollIntervalMs: 600_000,
      // A small replay memory (the executor uses 1 + PACED + 4 nonces), so that the strangers'
      // forged requests in its name (a quarter of 200+) would fill it if they could. Audits of
      // one capsule follow each other: a generous wait, so that only the flood could refuse.
      // The layers behind the connection guard, as if each stranger came from a host of its own
      // and under its budget (fast-path-strangers.test.ts tests the cut): budgets it never spends.
      fastPath: {
        enabled: true,
        maxNonces: 48,
        pendingWaitMs: 60_000,
        strangers: {
          perPeer: { capacity: 1e6, refillPerSecond: 1e6 },
          perHost: { capacity: 1e6, refillPerSecond: 1e6 },
        },
      },
    },
    events: ['audit-recorded'],
  })
  capsules = w.capsules
  capsuleId = w.capsuleId
  // 36 capsules sealed and registered (~11 s alone): in CI, beside the executor lane on 2 cores,
  // it once took over 60 s (ci0257). Only set-up time; the flood's own limits are unchanged.
}, 180_000)

afterAll(() => w?.stop())

const executorRequest = (capsule = capsuleId) => w.signed({ capsuleId: capsule })

describe('fast path under a stranger flood', () => {
  it('serves the registered executor while strangers with fresh keys and free peer ids flood it', async () => {
    const first = await request(w.exec.node, w.kgNode.peerId, fastPathProtocol, executorRequest())
    expect(first.status).toBe('granted')
    const lookupsBefore = lookups
    const flood = startFlood({
      keyguard: {
        peerId: w.kgNode.peerId.toString(),
        addrs: w.kgNode.getMultiaddrs().map((a) => a.toString()),
      },
      capsuleId,
      measurement: w.chain.measurement,
      chainId: w.chain.addresses.chainId.toString(),
      accessController: w.chain.addresses.accessController,
      executor: w.chain.executor.address,
      peers: STRANGERS,
      holders: 3,
      fillAnswers: 200,
      durationMs: 150_000,
    })
    try {
      await flood.ready
      const started = performance.now()
      // Enough stranger requests to fill the executor's replay memory if they reached it.
      await flood.filled
      // The executor at a steady pace (jobs on several capsules): its own quota, not the
      // strangers' per-peer bucket and shared queue.
      const paced: Promise<string>[] = []
      const t0 = performance.now()
      for (let i = 0; i < PACED; i++) {
        const wait = t0 + (i * 1000) / PACE_PER_SECOND - performance.now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
        paced.push(
          request(
            w.exec.node,
            w.kgNode.peerId,
            fastPathProtocol,
            executorRequest(capsules[i % CAPSULES] as string),
            { timeout: 90_000 },
          ).then(outcome, (err: { code?: string; details?: unknown }) =>
            [err.code, JSON.stringify(err.details)].join(':'),
          ),
        )
      }
      expect(await Promise.all(paced)).toEqual(Array(PACED).fill('granted'))
      // Audits are sent one at a time, each after the last receipt: let the paced ones land, so
      // that the next requests wait for the flood only, not for an audit backlog.
      await until(() => audited() >= 1 + PACED, 90_000)
      // The executor keeps being served during the flood.
      for (let i = 0; i < 4; i++) {
        const res = await request(
          w.exec.node,
          w.kgNode.peerId,
          fastPathProtocol,
          executorRequest(),
          {
            timeout: 15_000,
          },
        )
        expect(res.status === 'refused' ? `${res.reasonCode}:${res.reason}` : res.status).toBe(
          'granted',
        )
        await new Promise((r) => setTimeout(r, 300))
      }
      flood.stop()
      const counts = await flood.done
      const seconds = (performance.now() - started) / 1000 + 1
      const answers = Object.entries(counts)
        .filter(([k]) => !k.startsWith('error'))
        .reduce((n, [, v]) => n + v, 0)
      // Nothing granted to strangers.
      expect(answers).toBeGreaterThanOrEqual(200)
      expect(counts.granted).toBeUndefined()
      // Fresh addresses cost at most the lookup budget (20 burst + 10 a second), not one each.
      expect(lookups - lookupsBefore).toBeLessThanOrEqual(20 + Math.ceil(10 * seconds))
      expect(counts['busy:lookup-budget']).toBeGreaterThan(0)
      expect(counts['bad-signature:peer-id-mismatch']).toBeGreaterThan(0)
    } finally {
      flood.kill()
    }
  }, 240_000)
})
