/**
 * The verifier's job watch behind an RPC whose `eth_getLogs` backend lags (real anvil; the lag is
 * a JSON-RPC proxy in front of it, the fault injected).
 *
 * A load-balanced RPC can serve the head and blocks from a node that has them and `eth_getLogs`
 * from one whose log index has not reached them: a range query answers `[]` for those blocks.
 * The verifier read its window of the last `reorgBlocks` blocks by range, so a job whose block
 * left the window before the index had it was never seen: no ticket, a committee short of a
 * member. Now the window's blocks are read by block hash (EIP-234), which a node without the
 * block answers with an error, and the poll reads them again (ADR 0085).
 */
import { privateKeySigner } from '@digicap/capsule-core'
import { attested, connectSettlement, createProvider } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import {
  type LaggingLogIndex,
  laggingLogIndex,
  type RpcProxy,
  startRpcProxy,
} from '@digicap/contracts/testing'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { getBytes, hexlify, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ethersVerifierChain, type VerifierEvent, verifierNode } from '../src/node/index.ts'
import { makeCapsule, setupWorld, type World } from './helpers/world.ts'

let w: World
let node: DigicapNode
let proxy: RpcProxy
/** The proxy's log index: its logs above `lag.indexed` are withheld. */
let lag: LaggingLogIndex
/** When set, range reads answer every log with this measurement word (a lying RPC). */
let lieMeasurement: string | undefined

beforeAll(async () => {
  w = await setupWorld({
    fastPath: false,
    settlement: { seats: 4, sortitionWindow: 20, certificateBlocks: 600 },
  })
  node = await createDigicapNode()
  const anvil = w.anvil.provider
  lag = laggingLogIndex(async (hash) => (await anvil.getBlock(hash))?.number)
  proxy = await startRpcProxy(w.anvil.rpcUrl, async (call, result) => {
    const answer = (await lag.rewrite(call, result)) as { data: string }[]
    if (call.method !== 'eth_getLogs' || lieMeasurement === undefined) return answer
    // AccessGranted's data: ephemeralKey, measurement, expiresAt, fastPath (32 bytes each).
    return answer.map((l) =>
      l.data.length !== 2 + 4 * 64
        ? l
        : { ...l, data: l.data.slice(0, 66) + lieMeasurement + l.data.slice(130) },
    )
  })
}, 60_000)

afterAll(async () => {
  await node?.stop()
  await proxy?.close()
  await w?.stop()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The executor's chain-path grant for `capsuleId` (its ephemeral key filled with `fill`): the grant id. */
async function requestGrant(capsuleId: string, fill: number): Promise<string> {
  const ac = w.c.accessController
  const receipt = await (
    await ac
      .connect(w.executorWallet)
      .requestAccess(
        capsuleId,
        hexlify(new Uint8Array(32).fill(fill)),
        hexlify(w.measurement),
        '0x',
      )
  ).wait()
  return ac.interface.parseLog(receipt?.logs[0] as never)?.args[0] as string
}

/** A verifier chain for `signer`'s wallet, reading through the lagging proxy. */
function proxiedChain(signer: number) {
  const wallet = (w.anvil.signers[signer] as Wallet).connect(
    createProvider(proxy.url, BigInt(w.addresses.chainId)),
  )
  const chain = ethersVerifierChain({
    addresses: w.addresses,
    settlement: w.addresses as never,
    runner: wallet,
  })
  return { wallet, chain }
}

describe('verifier job watch behind a lagging eth_getLogs', () => {
  it('finds a job whose block left its window while the log index lagged', async () => {
    const provider = w.anvil.provider
    const policy = await deployPolicy(w.owner, attested(), {
      nodeRegistry: w.addresses.nodeRegistry,
    })
    const capsule = await makeCapsule(w, {
      plaintext: new TextEncoder().encode('lag'),
      runtime: { kind: 'data' },
      policy: policy.address,
    })
    const { wallet, chain: real } = proxiedChain(7)
    // The newest block a `JobOpened` read has ended on (answered or failed): a poll's end.
    let readTo = -1
    const chain = {
      ...real,
      openedJobs: (from: number, to: number) =>
        real.openedJobs(from, to).finally(() => {
          readTo = Math.max(readTo, to)
        }),
    }
    const events: VerifierEvent[] = []
    const verifier = verifierNode({
      pollMs: 100,
      reorgBlocks: 2,
      openJobs: false,
      ticketWaves: false,
      settle: false,
    })({
      libp2p: node.libp2p,
      chain,
      signer: privateKeySigner(wallet.privateKey as `0x${string}`),
      vrfKey: getBytes(wallet.privateKey),
      onEvent: (e) => events.push(e),
    })
    await verifier.start()
    try {
      lag.indexed = await provider.getBlockNumber()
      const grantId = await requestGrant(capsule.capsuleId, 5)
      const { attestationHub: hub } = connectSettlement(w.addresses as never, w.other)
      await (await hub.connect(w.other).openJob(grantId)).wait()
      // Past the window while the index lags, and read there.
      await provider.send('anvil_mine', ['0x5'])
      const past = await provider.getBlockNumber()
      while (readTo < past) await sleep(50)
      // The index catches up.
      lag.indexed = Number.POSITIVE_INFINITY
      await provider.send('evm_mine', [])
      const deadline = Date.now() + 15_000
      while (Date.now() < deadline && !events.some((e) => e.event === 'job-opened')) await sleep(50)
      expect(events.find((e) => e.event === 'job-opened')).toMatchObject({
        event: 'job-opened',
        jobId: grantId.toLowerCase(),
      })
    } finally {
      await verifier.stop()
    }
  }, 60_000)

  it("reads a seated job's grant once the log index has it, and checks its measurement against the grant", async () => {
    const provider = w.anvil.provider
    const capsule = await makeCapsule(w, {
      plaintext: new TextEncoder().encode('lagging grant'),
      runtime: { kind: 'data' },
    })
    const { chain } = proxiedChain(8)
    lag.indexed = await provider.getBlockNumber()
    const grantId = await requestGrant(capsule.capsuleId, 6)
    // The grant is in state, its event not in the lagging index: the read waits for the index
    // (before: "no AccessGranted" at once, and the member left the job).
    const read = chain.grant(getBytes(grantId))
    let settled = false
    void read.finally(() => {
      settled = true
    })
    await sleep(1500)
    expect(settled).toBe(false)
    lag.indexed = Number.POSITIVE_INFINITY
    const grant = await read
    expect(grant.executor.toLowerCase()).toBe(w.executorWallet.address.toLowerCase())
    expect(hexlify(grant.measurement)).toBe(hexlify(w.measurement))
    expect(hexlify(grant.ephemeralKey)).toBe(hexlify(new Uint8Array(32).fill(6)))
    // A log whose measurement is not the grant's is refused, not judged against.
    lieMeasurement = '11'.repeat(32)
    try {
      await expect(chain.grant(getBytes(grantId))).rejects.toThrow(/does not match the grant/)
    } finally {
      lieMeasurement = undefined
    }
  }, 60_000)

  it("a stopping node's grant read ends at once, not after the log retries", async () => {
    const capsule = await makeCapsule(w, {
      plaintext: new TextEncoder().encode('lagging grant, node stopping'),
      runtime: { kind: 'data' },
    })
    const { chain } = proxiedChain(8)
    lag.indexed = await w.anvil.provider.getBlockNumber()
    try {
      const grantId = await requestGrant(capsule.capsuleId, 7)
      // The index never catches up; the node stops 300 ms in. Before: the read ignored the stop
      // and went on for its 30 tries (30 s), and `stop()` waited for it.
      const started = performance.now()
      const err = await chain.grant(getBytes(grantId), AbortSignal.timeout(300)).then(
        () => undefined,
        (e: unknown) => e as Error,
      )
      expect(err?.name).toMatch(/AbortError|TimeoutError/)
      expect(performance.now() - started).toBeLessThan(3000)
    } finally {
      lag.indexed = Number.POSITIVE_INFINITY
    }
  }, 60_000)
})
