/**
 * The executor directory is fed from the NodeRegistry's registration events, so a registered
 * executor's very first request needs no lookup, even while strangers have spent the lookup
 * budget (before: `busy` `lookup-budget` until the budget refilled). Real anvil and libp2p on
 * loopback; the chain client is only wrapped to count lookups.
 */
import {
  type AccessResponse,
  addressToBytes,
  fastPathProtocol,
  request,
  signAccessRequest,
} from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getBytes, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ChainClient, createKeyguard, type Keyguard } from '../src/index.ts'
import { type FloodTarget, strangerRequest } from './helpers/flood.ts'
import {
  type Chain,
  chainClientFor,
  createNode,
  type ExecutorSide,
  executorSide,
  type KeyguardParts,
  keyguardParts,
  quietLogger,
  registerCapsule,
  registerExecutor,
  setupChain,
  storeKey,
} from './helpers/world.ts'

let chain: Chain
let kgNode: Libp2p
let stranger: Libp2p
let exec: ExecutorSide
let late: ExecutorSide
let parts: KeyguardParts
let capsuleId: string
let keyguard: Keyguard
let target: FloodTarget
/** NodeRegistry lookups (`getNode`) by address. */
const lookups = new Map<string, number>()

beforeAll(async () => {
  ;[chain, kgNode, stranger, exec, late] = await Promise.all([
    setupChain(),
    createNode(),
    createNode(),
    executorSide(),
    executorSide(),
  ])
  await registerExecutor(chain, chain.executor, exec.node)
  parts = await keyguardParts()
  capsuleId = await registerCapsule(chain, kgNode)
  await storeKey(parts, capsuleId, randomBytes(32))
  const real = chainClientFor(chain)
  const counted: ChainClient = Object.create(real)
  counted.nodePeerId = (node) => {
    lookups.set(node, (lookups.get(node) ?? 0) + 1)
    return real.nodePeerId(node)
  }
  keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: 0,
    startBlock: chain.addresses.deployBlock,
    pollIntervalMs: 600_000,
    fastPath: {
      enabled: true,
      // One lookup in all (refilled after ~17 minutes): one stranger spends it.
      lookups: { capacity: 1, refillPerSecond: 0.001 },
      registrations: { pollIntervalMs: 200 },
    },
  })({ ...parts, chain: counted, libp2p: kgNode, logger: quietLogger })
  const synced = new Promise<CustomEvent>((resolve) =>
    keyguard.events.addEventListener('executors-synced', (e) => resolve(e as CustomEvent), {
      once: true,
    }),
  )
  await keyguard.start()
  const at = await synced
  expect(at.detail.executors).toBeGreaterThanOrEqual(1)
  for (const node of [exec.node, late.node, stranger]) {
    await node.peerStore.merge(kgNode.peerId, { multiaddrs: kgNode.getMultiaddrs() })
  }
  target = {
    keyguard: kgNode.peerId,
    capsuleId,
    measurement: chain.measurement,
    domain: {
      chainId: BigInt(chain.addresses.chainId),
      verifyingContract: chain.addresses.accessController as `0x${string}`,
    },
    executor: chain.executor.address,
  }
}, 60_000)

afterAll(async () => {
  await keyguard?.stop()
  await Promise.all([kgNode?.stop(), stranger?.stop(), exec?.stop(), late?.stop()])
  await chain?.anvil.stop()
  await parts?.cleanup()
})

function requestOf(wallet: Wallet, side: ExecutorSide) {
  return signAccessRequest(
    {
      capsuleId: getBytes(capsuleId),
      executor: addressToBytes(wallet.address as `0x${string}`),
      ephemeralKey: getBytes(side.newEphemeral()),
      measurement: getBytes(chain.measurement),
      jobParamsHash: keccak_256(new Uint8Array(0)),
      fee: 0n,
      nonce: randomBytes(32),
      expiry: BigInt(Math.floor(Date.now() / 1000) + 120),
      jobParams: new Uint8Array(0),
    },
    target.domain,
    getBytes(wallet.privateKey),
  )
}

const outcome = (res: AccessResponse): string =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason}` : res.status

describe('executor directory fed from registration events', () => {
  it("serves a registered executor's first request without a lookup while strangers spent the budget", async () => {
    // A fresh address costs the one lookup there is; the next one finds the budget spent.
    const first = await request(stranger, kgNode.peerId, fastPathProtocol, strangerRequest(target))
    expect(outcome(first)).toBe('policy-denied:EXECUTOR_NOT_REGISTERED')
    const second = await request(stranger, kgNode.peerId, fastPathProtocol, strangerRequest(target))
    expect(outcome(second)).toBe('busy:lookup-budget')
    // The executor registered before the keyguard started: known from the catch-up read.
    const res = await request(
      exec.node,
      kgNode.peerId,
      fastPathProtocol,
      requestOf(chain.executor, exec),
    )
    expect(outcome(res)).toBe('granted')
    expect(lookups.get(chain.executor.address)).toBeUndefined()
  }, 30_000)

  it('learns an executor registered while the keyguard runs, without a lookup', async () => {
    await registerExecutor(chain, chain.other, late.node)
    // Until the feed's next poll it is a stranger whose lookup budget is spent (`busy`, or
    // its peer's stranger bucket is empty); after it, served from memory.
    let last = ''
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; ) {
      const res = await request(
        late.node,
        kgNode.peerId,
        fastPathProtocol,
        requestOf(chain.other, late),
      )
      last = outcome(res)
      if (last !== 'busy:lookup-budget' && last !== 'rate-limited:undefined') break
      await new Promise((r) => setTimeout(r, 250))
    }
    expect(last).toBe('granted')
    expect(lookups.get(chain.other.address)).toBeUndefined()
  }, 30_000)

  it('reads NodeRegistered and NodeUpdated through the RPC quorum', async () => {
    const quorum = chainClientFor(chain, chain.owner, [chain.anvil.rpcUrl, chain.anvil.rpcUrl])
    const head = await quorum.blockNumber()
    const logs = await quorum.nodeRegistrations(chain.addresses.deployBlock, head)
    const byNode = new Map(logs.map((l) => [l.node, l]))
    expect(Buffer.from(byNode.get(chain.executor.address)?.peerId ?? []).toString('hex')).toBe(
      Buffer.from(exec.node.peerId.toMultihash().bytes).toString('hex'),
    )
    expect(byNode.get(chain.other.address)?.roles).toBe(1)
    // An update (new peer id) is a later log of the same node.
    const moved = await createNode()
    try {
      await (
        await chain.c.nodeRegistry
          .connect(chain.other)
          .update(moved.peerId.toMultihash().bytes, `0x${'11'.repeat(32)}`, 1)
      ).wait()
      const after = await quorum.nodeRegistrations(head + 1, await quorum.blockNumber())
      expect(after.map((l) => [l.node, Buffer.from(l.peerId).toString('hex')])).toEqual([
        [chain.other.address, Buffer.from(moved.peerId.toMultihash().bytes).toString('hex')],
      ])
    } finally {
      await moved.stop()
    }
  }, 30_000)
})
