/**
 * Anyone can try to close the fast path: many peer ids (free) sending requests signed by fresh
 * keys for a capsule the keyguard holds, forged requests naming the registered executor, and
 * streams holding half a frame. The registered executor must still be served, strangers must
 * not fill its replay memory, and their RPC lookups must stay within the global budget.
 * Real anvil and libp2p on loopback; the chain client is only wrapped to count lookups.
 */
import { addressToBytes, fastPathProtocol, request, signAccessRequest } from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getBytes, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ChainClient, createKeyguard, type Keyguard } from '../src/index.ts'
import { startFlood } from './helpers/flood.ts'
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

const STRANGERS = 20

let chain: Chain
let kgNode: Libp2p
let exec: ExecutorSide
let parts: KeyguardParts
let capsuleId: string
let keyguard: Keyguard
let lookups = 0

beforeAll(async () => {
  ;[chain, kgNode, exec] = await Promise.all([setupChain(), createNode(), executorSide()])
  await registerExecutor(chain, chain.executor, exec.node)
  parts = await keyguardParts()
  capsuleId = await registerCapsule(chain, kgNode)
  await storeKey(parts, capsuleId, randomBytes(32))
  const real = chainClientFor(chain)
  const counted: ChainClient = Object.create(real)
  counted.nodePeerId = (node) => {
    lookups++
    return real.nodePeerId(node)
  }
  keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: 0,
    startBlock: chain.addresses.deployBlock,
    pollIntervalMs: 600_000,
    // A small replay memory, so that strangers would fill it within the test if they could.
    fastPath: { enabled: true, maxNonces: 5 },
  })({ ...parts, chain: counted, libp2p: kgNode, logger: quietLogger })
  await keyguard.start()
  await exec.node.peerStore.merge(kgNode.peerId, { multiaddrs: kgNode.getMultiaddrs() })
}, 60_000)

afterAll(async () => {
  await keyguard?.stop()
  await Promise.all([kgNode?.stop(), exec?.stop()])
  await chain?.anvil.stop()
  await parts?.cleanup()
})

function executorRequest() {
  return signAccessRequest(
    {
      capsuleId: getBytes(capsuleId),
      executor: addressToBytes(chain.executor.address as `0x${string}`),
      ephemeralKey: getBytes(exec.newEphemeral()),
      measurement: getBytes(chain.measurement),
      jobParamsHash: keccak_256(new Uint8Array(0)),
      fee: 0n,
      nonce: randomBytes(32),
      expiry: BigInt(Math.floor(Date.now() / 1000) + 120),
      jobParams: new Uint8Array(0),
    },
    {
      chainId: BigInt(chain.addresses.chainId),
      verifyingContract: chain.addresses.accessController as `0x${string}`,
    },
    getBytes(chain.executor.privateKey),
  )
}

describe('fast path under a stranger flood', () => {
  it('serves the registered executor while strangers with fresh keys and free peer ids flood it', async () => {
    const first = await request(exec.node, kgNode.peerId, fastPathProtocol, executorRequest())
    expect(first.status).toBe('granted')
    const lookupsBefore = lookups
    const flood = startFlood({
      keyguard: {
        peerId: kgNode.peerId.toString(),
        addrs: kgNode.getMultiaddrs().map((a) => a.toString()),
      },
      capsuleId,
      measurement: chain.measurement,
      chainId: chain.addresses.chainId.toString(),
      accessController: chain.addresses.accessController,
      executor: chain.executor.address,
      peers: STRANGERS,
      holders: 3,
      fillAnswers: 30,
      durationMs: 60_000,
    })
    try {
      await flood.ready
      const started = performance.now()
      // Enough stranger requests to fill a 5-nonce replay memory several times over.
      await flood.filled
      // The executor keeps being served during the flood.
      for (let i = 0; i < 4; i++) {
        const res = await request(exec.node, kgNode.peerId, fastPathProtocol, executorRequest(), {
          timeout: 15_000,
        })
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
      expect(answers).toBeGreaterThanOrEqual(30)
      expect(counts.granted).toBeUndefined()
      // Fresh addresses cost at most the lookup budget (20 burst + 10 a second), not one each.
      expect(lookups - lookupsBefore).toBeLessThanOrEqual(20 + Math.ceil(10 * seconds))
      expect(counts['busy:lookup-budget']).toBeGreaterThan(0)
      expect(counts['bad-signature:peer-id-mismatch']).toBeGreaterThan(0)
    } finally {
      flood.kill()
    }
  }, 60_000)
})
