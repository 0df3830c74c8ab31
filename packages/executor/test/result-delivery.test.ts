/**
 * Result delivery under receivers that answer late, slowly or "not now", on real libp2p nodes
 * over loopback (a scripted grant source stands in for the chain):
 * - the receiver keeps "one grant, one result" when two deliveries of a grant wait for it on
 *   chain at once (a fast-path grant is polled for);
 * - a pending result goes to its receiver when it connects even while another receiver's flush
 *   hangs (each peer is flushed on its own);
 * - a result a connected receiver refused for now (`busy`) is sent again while it stays
 *   connected, no sooner than its `retryAfterMs`.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  encodeHpkeSealed,
  generateX25519KeyPair,
  hpkeSeal,
  privateKeySigner,
} from '@digicap/capsule-core'
import { writeJsonAtomic } from '@digicap/cli-kit'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import {
  addressToBytes,
  grantIdOf,
  handle,
  type ResultAck,
  type ResultDelivery,
  request,
  resultAad,
  resultHashOf,
  resultProtocol,
  signResult,
} from '@digicap/protocol'
import { multiaddr } from '@multiformats/multiaddr'
import { randomBytes } from 'ethers'
import { afterAll, describe, expect, it } from 'vitest'
import { createResultDeliverer, createResultReceiver, filePendingDeliveries } from '../src/index.ts'
import { pendingNote } from '../src/node/run-socket/index.ts'

const nodes: DigicapNode[] = []
const node = async () => {
  const n = await createDigicapNode({ pubsub: false })
  nodes.push(n)
  return n
}
afterAll(async () => {
  for (const n of nodes) await n.stop().catch(() => {})
})
const bytes = (n: number) => Uint8Array.from(randomBytes(n))
const domain = { chainId: 31337n, verifyingContract: `0x${'11'.repeat(20)}` as const }
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const until = async (test: () => boolean, ms: number) => {
  const end = Date.now() + ms
  while (!test() && Date.now() < end) await sleep(20)
  return test()
}
/** A deliverer on node `on`, signing as a fresh executor key. */
const delivererOn = (on: DigicapNode, init: Parameters<typeof createResultDeliverer>[0]) =>
  createResultDeliverer(init)({
    libp2p: on.libp2p,
    store: heliaCapsuleStore(on.helia),
    domain,
    signer: privateKeySigner(bytes(32)),
  })
const runIds = () => ({
  runId: bytes(32),
  capsuleId: bytes(32),
  grantId: bytes(32),
  measurement: bytes(32),
  runMeasurement: bytes(32),
})

describe('the receiver: one grant, one result', () => {
  it('two deliveries of one grant that both wait for it on chain: one is accepted, the other refused replayed', async () => {
    const execKey = bytes(32)
    const signer = privateKeySigner(execKey)
    const receiverKeys = generateX25519KeyPair()
    const grant = {
      executor: addressToBytes(signer.address),
      capsuleId: bytes(32),
      ephemeralKey: bytes(32),
      runIndex: 0n,
    }
    const measurement = bytes(32)
    const grantId = grantIdOf(domain, grant, measurement)
    // the fast path's audit record is mined 1.5 s from now: both deliveries poll for it
    const minedAt = Date.now() + 1500
    const grants = { domain, getGrant: async () => (Date.now() >= minedAt ? grant : undefined) }
    const [E, R] = await Promise.all([node(), node()])
    const receiver = createResultReceiver({ privateKey: receiverKeys.privateKey })({
      libp2p: R.libp2p,
      grants,
      // these runs have no capsule: the header check (11) is not what this test is about
      capsules: { receiversOf: async () => [receiverKeys.publicKey] },
    })
    await receiver.start()
    await E.libp2p.dial(multiaddr(R.multiaddrs()[0]))
    const delivery = async (text: string): Promise<ResultDelivery> => {
      const ids = { runId: bytes(32), capsuleId: grant.capsuleId, grantId }
      const sealed = encodeHpkeSealed(
        await hpkeSeal(receiverKeys.publicKey, new TextEncoder().encode(text), resultAad(ids)),
      )
      const fields = {
        ...ids,
        executor: grant.executor,
        receiverKey: receiverKeys.publicKey,
        measurement,
        runMeasurement: bytes(32),
        resultHash: resultHashOf(sealed),
        resultSize: sealed.length,
      }
      return { ...fields, signature: signResult(fields, domain, execKey), hpke: sealed }
    }
    const results: string[] = []
    receiver.events.addEventListener('result', (e) =>
      results.push(new TextDecoder().decode((e as CustomEvent).detail.output)),
    )
    const send = (d: ResultDelivery) =>
      request(E.libp2p, R.libp2p.peerId, resultProtocol, d, { timeout: 20_000 })
    const [a, b] = [await delivery('result A'), await delivery('result B')]
    const first = send(a)
    await sleep(120)
    const second = send(b)
    const acks: ResultAck[] = await Promise.all([first, second])
    // Both waits can end on the same poll of the grant: the later one then finds the earlier
    // one still being taken and is told `busy` (its deliverer retries). Its retry, once the
    // earlier one is accepted, is a second result for the grant.
    const busy = acks.findIndex((x) => x.status !== 'ok' && x.reasonCode === 'busy')
    if (busy >= 0) acks[busy] = await send(busy === 0 ? a : b)
    await receiver.stop()
    // whichever finished its wait first is the grant's result; the other is a second one
    const answers = acks.map((x) => (x.status === 'ok' ? 'ok' : x.reasonCode))
    expect([...answers].sort()).toEqual(['ok', 'replayed'])
    expect(results).toEqual([answers[0] === 'ok' ? 'result A' : 'result B'])
  }, 30_000)
})

describe('the deliverer: pending results', () => {
  it('a receiver that never answers holds up only its own results: another one connecting meanwhile gets its result', async () => {
    const [E, A, B] = await Promise.all([node(), node(), node()])
    const deliverer = delivererOn(E, { directDeadlineMs: 200, requestTimeoutMs: 8000 })
    let toA = 0
    let toB = 0
    await handle(A.libp2p, resultProtocol, async (m): Promise<ResultAck> => {
      toA++
      return { runId: m.runId, status: 'ok' }
    })
    await handle(
      B.libp2p,
      resultProtocol,
      async (m, ctx): Promise<ResultAck> => {
        toB++
        await new Promise((r) => ctx.signal.addEventListener('abort', r))
        return { runId: m.runId, status: 'ok' }
      },
      { timeout: 60_000 },
    )
    const receiver = (n: DigicapNode) => ({
      publicKey: generateX25519KeyPair().publicKey,
      peerId: n.peerId,
    })
    // E knows neither address: both direct attempts fail and both results wait
    const out = await deliverer.deliver(runIds(), [receiver(B), receiver(A)], new Uint8Array(8))
    expect(out.map((d) => d.status)).toEqual(['stored', 'stored'])
    await B.libp2p.dial(multiaddr(E.multiaddrs()[0])) // B's flush hangs for 8 s
    expect(await until(() => toB === 1, 5000)).toBe(true)
    await A.libp2p.dial(multiaddr(E.multiaddrs()[0]))
    // A's result goes while B's exchange still hangs
    expect(await until(() => deliverer.pending() === 1, 4000)).toBe(true)
    expect([toA, toB]).toEqual([1, 1])
    deliverer.stop()
  }, 30_000)

  it('a result a connected receiver refused busy is sent again while it stays connected, after its retryAfterMs', async () => {
    const [E, A] = await Promise.all([node(), node()])
    const deliverer = delivererOn(E, { directDeadlineMs: 200, flushRetryBaseMs: 100 })
    const at: number[] = []
    await handle(A.libp2p, resultProtocol, async (m): Promise<ResultAck> => {
      at.push(Date.now())
      return at.length === 1
        ? { runId: m.runId, status: 'refused', reasonCode: 'busy', retryAfterMs: 700 }
        : { runId: m.runId, status: 'ok' }
    })
    const out = await deliverer.deliver(
      runIds(),
      [{ publicKey: generateX25519KeyPair().publicKey, peerId: A.peerId }],
      new Uint8Array(8),
    )
    expect(out[0]?.status).toBe('stored')
    await A.libp2p.dial(multiaddr(E.multiaddrs()[0]))
    expect(await deliverer.drained(5000)).toBe(true)
    expect(at).toHaveLength(2)
    // the receiver asked for 700 ms; the deliverer's own first wait is 100 ms
    expect((at[1] as number) - (at[0] as number)).toBeGreaterThanOrEqual(690)
    deliverer.stop()
  }, 30_000)
})

describe('the deliverer: a receiver that stays connected', () => {
  it('gets a copy stored while it refused for now (past the direct deadline) without reconnecting', async () => {
    const [E, A] = await Promise.all([node(), node()])
    const deliverer = delivererOn(E, { directDeadlineMs: 300, flushRetryBaseMs: 100 })
    const mined = Date.now() + 1200 // the fast path's grant is on chain from then on
    const got: ResultDelivery[] = []
    await handle(A.libp2p, resultProtocol, async (m): Promise<ResultAck> => {
      if (Date.now() < mined)
        return { runId: m.runId, status: 'refused', reasonCode: 'unknown-grant' }
      got.push(m)
      return { runId: m.runId, status: 'ok' }
    })
    await E.libp2p.dial(multiaddr(A.multiaddrs()[0]))
    const out = await deliverer.deliver(
      runIds(),
      [{ publicKey: generateX25519KeyPair().publicKey, peerId: A.peerId }],
      new Uint8Array(8),
    )
    expect(out[0]?.status).toBe('stored')
    expect(await deliverer.drained(6000)).toBe(true)
    expect(got).toHaveLength(1)
    expect(got[0]?.resultCid).toBe(out[0]?.resultCid)
    expect(E.libp2p.getConnections(A.libp2p.peerId).length).toBeGreaterThan(0)
    deliverer.stop()
  }, 30_000)

  it('drops a copy still refused for now after pendingMaxAgeMs: no retries for ever', async () => {
    const [E, A] = await Promise.all([node(), node()])
    const deliverer = delivererOn(E, {
      directDeadlineMs: 200,
      flushRetryBaseMs: 100,
      pendingMaxAgeMs: 600,
    })
    let asked = 0
    await handle(A.libp2p, resultProtocol, async (m): Promise<ResultAck> => {
      asked++
      return { runId: m.runId, status: 'refused', reasonCode: 'fetch-failed' }
    })
    await E.libp2p.dial(multiaddr(A.multiaddrs()[0]))
    await deliverer.deliver(
      runIds(),
      [{ publicKey: generateX25519KeyPair().publicKey, peerId: A.peerId }],
      new Uint8Array(8),
    )
    expect(await deliverer.drained(5000)).toBe(true)
    const after = asked
    await sleep(800)
    expect(asked).toBe(after)
    deliverer.stop()
  }, 30_000)
})

describe('the deliverer: a refusal code it does not know (a newer receiver’s, protocol SPEC §3.4.5)', () => {
  it('is final without retryAfterMs: reported with the code as sent, after one attempt, nothing stored', async () => {
    const [E, A] = await Promise.all([node(), node()])
    const deliverer = delivererOn(E, { directDeadlineMs: 5000 })
    let asked = 0
    // A receiver of a later release, refusing with a code this executor has never heard of.
    await handle(A.libp2p, resultProtocol, async (m): Promise<ResultAck> => {
      asked++
      return { runId: m.runId, status: 'refused', reasonCode: 'header-withdrawn' }
    })
    await E.libp2p.dial(multiaddr(A.multiaddrs()[0]))
    const out = await deliverer.deliver(
      runIds(),
      [{ publicKey: generateX25519KeyPair().publicKey, peerId: A.peerId }],
      new Uint8Array(8),
    )
    expect(out[0]).toMatchObject({ status: 'refused', reasonCode: 'header-withdrawn', attempts: 1 })
    expect(asked).toBe(1)
    expect(deliverer.pending()).toBe(0)
    deliverer.stop()
  }, 30_000)

  it('is retried with retryAfterMs: the receiver said when', async () => {
    const [E, A] = await Promise.all([node(), node()])
    const deliverer = delivererOn(E, { directDeadlineMs: 5000, retryBaseMs: 50 })
    let asked = 0
    await handle(A.libp2p, resultProtocol, async (m): Promise<ResultAck> => {
      asked++
      return asked === 1
        ? { runId: m.runId, status: 'refused', reasonCode: 'held-for-review', retryAfterMs: 100 }
        : { runId: m.runId, status: 'ok' }
    })
    await E.libp2p.dial(multiaddr(A.multiaddrs()[0]))
    const out = await deliverer.deliver(
      runIds(),
      [{ publicKey: generateX25519KeyPair().publicKey, peerId: A.peerId }],
      new Uint8Array(8),
    )
    expect(out[0]).toMatchObject({ status: 'delivered', attempts: 2 })
    deliverer.stop()
  }, 30_000)
})

describe('the deliverer: several receivers', () => {
  it('tries receivers side by side: three unreachable ones cost one direct deadline, not three', async () => {
    const E = await node()
    const offline = await Promise.all([node(), node(), node()])
    const deliverer = delivererOn(E, { directDeadlineMs: 1500 })
    // E knows none of their addresses: each direct attempt runs to its deadline
    const started = Date.now()
    const out = await deliverer.deliver(
      runIds(),
      offline.map((n) => ({ publicKey: generateX25519KeyPair().publicKey, peerId: n.peerId })),
      new Uint8Array(8),
    )
    const ms = Date.now() - started
    expect(out.map((d) => [d.receiver, d.status])).toEqual([
      [0, 'stored'],
      [1, 'stored'],
      [2, 'stored'],
    ])
    // one after the other it was at least 3 × 1 500 ms
    expect(ms).toBeLessThan(3500)
    deliverer.stop()
  }, 30_000)
})

describe('pending results across processes (filePendingDeliveries)', () => {
  it('a copy reported stored is on disk; the next process on the folder sends it when the receiver connects, and skips a damaged record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pending-results-'))
    try {
      const signer = privateKeySigner(bytes(32))
      const [E1, A] = await Promise.all([node(), node()])
      const first = createResultDeliverer({ directDeadlineMs: 200 })({
        libp2p: E1.libp2p,
        store: heliaCapsuleStore(E1.helia),
        domain,
        signer,
        pending: filePendingDeliveries({ dir })({ writeJsonAtomic }),
      })
      const ids = runIds()
      const out = await first.deliver(
        ids,
        [{ publicKey: generateX25519KeyPair().publicKey, peerId: A.peerId }],
        new TextEncoder().encode('kept for later'),
      )
      expect(out[0]?.status).toBe('stored')
      // reported stored: its record is already on disk (a kill -9 from here loses nothing)
      const [record] = readdirSync(dir).filter((f) => f.endsWith('.json'))
      expect(record).toBeDefined()
      // a record cut short by a bad disk, under another name: skipped, never sent
      const damaged = `${'ab'.repeat(32)}-${'cd'.repeat(32)}.json`
      writeFileSync(
        join(dir, damaged),
        readFileSync(join(dir, record as string), 'utf8').slice(0, 90),
      )
      first.stop() // this process is gone; its memory with it
      await E1.stop()
      const E2 = await node()
      const second = createResultDeliverer({ directDeadlineMs: 200 })({
        libp2p: E2.libp2p,
        store: heliaCapsuleStore(E2.helia),
        domain,
        signer,
        pending: filePendingDeliveries({ dir })({ writeJsonAtomic }),
      })
      expect(await second.restore()).toEqual({ restored: 1, skipped: [damaged] })
      const got: ResultDelivery[] = []
      await handle(A.libp2p, resultProtocol, async (m): Promise<ResultAck> => {
        got.push(m)
        return { runId: m.runId, status: 'ok' }
      })
      await A.libp2p.dial(multiaddr(E2.multiaddrs()[0]))
      expect(await second.drained(5000)).toBe(true)
      expect(got).toHaveLength(1)
      expect(got[0]?.resultCid).toBe(out[0]?.resultCid)
      expect(Buffer.from(got[0]?.runId ?? []).equals(Buffer.from(ids.runId))).toBe(true)
      // delivered: its record is gone; the damaged file stays for the operator to look at
      expect(
        await until(() => readdirSync(dir).filter((f) => f.endsWith('.json')).length === 1, 3000),
      ).toBe(true)
      expect(readdirSync(dir)).toContain(damaged)
      second.stop()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 30_000)
})

describe('a one-shot run with results left pending', () => {
  it('says where they are kept and who sends them (the next node on the folder)', () => {
    expect(pendingNote(0)).toBe('')
    const note = pendingNote(2)
    expect(note).toContain('2 result(s)')
    expect(note).toContain('kept in pending-results/')
  })
})
