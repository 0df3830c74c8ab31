/**
 * The executor directory is fed from the NodeRegistry's registration events, so a registered
 * executor's very first request needs no lookup, even while strangers have spent the lookup
 * budget (before: `busy` `lookup-budget` until the budget refilled). Real anvil and libp2p on
 * loopback; the chain client is only wrapped to count lookups.
 */
import { fastPathProtocol, request } from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import type { Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { outcome } from './helpers/access-request.ts'
import { type FloodTarget, floodTargetOf, strangerRequest } from './helpers/flood.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import {
  chainClientFor,
  countingLookups,
  createNode,
  type ExecutorSide,
  registerExecutor,
  until,
} from './helpers/world.ts'

let w: KeyguardWorld
let stranger: Libp2p
let late: ExecutorSide
let target: FloodTarget
/** NodeRegistry lookups (`getNode`) by address. */
const lookups = new Map<string, number>()

beforeAll(async () => {
  w = await keyguardWorld({
    executors: 2,
    strangers: 1,
    chainClient: (real) =>
      countingLookups(real, (node) => lookups.set(node, (lookups.get(node) ?? 0) + 1)),
    keyguard: {
      pollIntervalMs: 600_000,
      fastPath: {
        enabled: true,
        // One lookup in all (refilled after ~17 minutes): one stranger spends it.
        lookups: { capacity: 1, refillPerSecond: 0.001 },
        registrations: { pollIntervalMs: 200 },
      },
    },
    events: ['executors-synced'],
  })
  ;[stranger, late] = [w.strangers[0] as Libp2p, w.executors[1] as ExecutorSide]
  const synced = () => w.events.find((e) => e.type === 'executors-synced')
  await until(() => synced() !== undefined, 30_000)
  expect((synced() as { executors: number }).executors).toBeGreaterThanOrEqual(1)
  target = floodTargetOf(w)
}, 60_000)

afterAll(() => w?.stop())

const requestOf = (wallet: Wallet, side: ExecutorSide) => w.signed({ signer: wallet, side })

describe('executor directory fed from registration events', () => {
  it("serves a registered executor's first request without a lookup while strangers spent the budget", async () => {
    // A fresh address costs the one lookup there is; the next one finds the budget spent.
    const first = await request(
      stranger,
      w.kgNode.peerId,
      fastPathProtocol,
      strangerRequest(target),
    )
    expect(outcome(first)).toBe('policy-denied:EXECUTOR_NOT_REGISTERED')
    const second = await request(
      stranger,
      w.kgNode.peerId,
      fastPathProtocol,
      strangerRequest(target),
    )
    expect(outcome(second)).toBe('busy:lookup-budget')
    // The executor registered before the keyguard started: known from the catch-up read.
    const res = await request(
      w.exec.node,
      w.kgNode.peerId,
      fastPathProtocol,
      requestOf(w.chain.executor, w.exec),
    )
    expect(outcome(res)).toBe('granted')
    expect(lookups.get(w.chain.executor.address)).toBeUndefined()
  }, 30_000)

  it('learns an executor registered while the keyguard runs, without a lookup', async () => {
    await registerExecutor(w.chain, w.chain.other, late.node)
    // Until the feed's next poll it is a stranger whose lookup budget is spent (`busy`, or
    // its peer's stranger bucket is empty); after it, served from memory.
    let last = ''
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; ) {
      const res = await request(
        late.node,
        w.kgNode.peerId,
        fastPathProtocol,
        requestOf(w.chain.other, late),
      )
      last = outcome(res)
      if (last !== 'busy:lookup-budget' && last !== 'rate-limited:undefined') break
      await new Promise((r) => setTimeout(r, 250))
    }
    expect(last).toBe('granted')
    expect(lookups.get(w.chain.other.address)).toBeUndefined()
  }, 30_000)

  it('reads NodeRegistered and NodeUpdated through the RPC quorum', async () => {
    const quorum = chainClientFor(w.chain, w.chain.owner, [
      w.chain.anvil.rpcUrl,
      w.chain.anvil.rpcUrl,
    ])
    const head = await quorum.blockNumber()
    const logs = await quorum.nodeRegistrations(w.chain.addresses.deployBlock, head)
    const byNode = new Map(logs.map((l) => [l.node, l]))
    expect(Buffer.from(byNode.get(w.chain.executor.address)?.peerId ?? []).toString('hex')).toBe(
      Buffer.from(w.exec.node.peerId.toMultihash().bytes).toString('hex'),
    )
    expect(byNode.get(w.chain.other.address)?.roles).toBe(1)
    // An update (new peer id) is a later log of the same node.
    const moved = await createNode()
    try {
      await (
        await w.chain.c.nodeRegistry
          .connect(w.chain.other)
          .update(moved.peerId.toMultihash().bytes, `0x${'11'.repeat(32)}`, 1)
      ).wait()
      const after = await quorum.nodeRegistrations(head + 1, await quorum.blockNumber())
      expect(after.map((l) => [l.node, Buffer.from(l.peerId).toString('hex')])).toEqual([
        [w.chain.other.address, Buffer.from(moved.peerId.toMultihash().bytes).toString('hex')],
      ])
    } finally {
      await moved.stop()
    }
  }, 30_000)
})
