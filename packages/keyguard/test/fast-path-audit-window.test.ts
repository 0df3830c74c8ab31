/**
 * The keyguard accepts no fast-path request expiring later than the AccessController's
 * `auditWindow` ahead, whatever its own `maxExpirySeconds` (contracts ADR 0006): the audit of a
 * key it released then lands inside the window or not at all.
 */
import {
  type AccessRequest,
  addressToBytes,
  fastPathProtocol,
  request,
  signAccessRequest,
} from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getBytes, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard } from '../src/index.ts'
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
let exec: ExecutorSide
let parts: KeyguardParts
let capsuleId: string
let stopKeyguard: () => Promise<void>

beforeAll(async () => {
  ;[chain, kgNode, exec] = await Promise.all([setupChain(), createNode(), executorSide()])
  await registerExecutor(chain, chain.executor, exec.node)
  parts = await keyguardParts()
  capsuleId = await registerCapsule(chain, kgNode)
  await storeKey(parts, capsuleId, randomBytes(32))
  const keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: 0,
    startBlock: chain.addresses.deployBlock,
    pollIntervalMs: 200,
    // Longer than the contract's audit window (600 s by default): the window wins.
    fastPath: { enabled: true, maxExpirySeconds: 3600 },
  })({
    sealer: parts.sealer,
    keyStore: parts.keyStore,
    journal: parts.journal,
    chain: chainClientFor(chain),
    libp2p: kgNode,
    logger: quietLogger,
  })
  await keyguard.start()
  stopKeyguard = () => keyguard.stop()
  await exec.node.peerStore.merge(kgNode.peerId, { multiaddrs: kgNode.getMultiaddrs() })
}, 60_000)

function signed(expiry: bigint): AccessRequest {
  const jobParams = new Uint8Array(0)
  return signAccessRequest(
    {
      capsuleId: getBytes(capsuleId),
      executor: addressToBytes(chain.executor.address as `0x${string}`),
      ephemeralKey: getBytes(exec.newEphemeral()),
      measurement: getBytes(chain.measurement),
      jobParamsHash: keccak_256(jobParams),
      fee: 0n,
      nonce: randomBytes(32),
      expiry,
      jobParams,
    },
    {
      chainId: BigInt(chain.addresses.chainId),
      verifyingContract: chain.addresses.accessController as `0x${string}`,
    },
    getBytes(chain.executor.privateKey),
  )
}

afterAll(async () => {
  await stopKeyguard?.()
  await Promise.all([kgNode?.stop(), exec?.stop(), chain?.anvil.stop()])
  await parts?.cleanup()
})

describe('fast path: the audit window caps the expiry', () => {
  it('refuses a request expiring beyond auditWindow even when maxExpirySeconds allows it', async () => {
    expect(await chain.c.accessController.auditWindow()).toBe(600n)
    const now = BigInt(Math.floor(Date.now() / 1000))
    const far = await request(exec.node, kgNode.peerId, fastPathProtocol, signed(now + 1200n))
    expect(far.status === 'refused' ? [far.reasonCode, far.reason] : far.status).toEqual([
      'expired',
      'too-far',
    ])
    const near = await request(exec.node, kgNode.peerId, fastPathProtocol, signed(now + 500n))
    expect(near.status).toBe('granted')
  })
})
