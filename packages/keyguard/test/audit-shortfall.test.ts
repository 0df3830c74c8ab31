/**
 * The owner sees when a fast-path audit was paid from the executor's stake (contracts ADR 0006,
 * `AuditShortfall`): two keyguards (capsules of two owners) release to one executor against one
 * deposit before either audit is mined; the other owner's audit lands first, so ours is paid
 * from the stake, and the keyguard raises `audit-shortfall` and logs it. Real anvil (automine
 * paused to put both audits in one block, as in contracts' audit-race test) and libp2p.
 */
import { all, environment, fee } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { addressToBytes, fastPathProtocol, request, signAccessRequest } from '@digicap/protocol'
import type { Libp2p } from '@libp2p/interface'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getBytes, hexlify, parseEther, randomBytes, toBeHex, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard, type Keyguard, type KeyguardEvent } from '../src/index.ts'
import {
  type Chain,
  chainClientFor,
  createNode,
  type ExecutorSide,
  executorSide,
  type KeyguardParts,
  keyguardParts,
  registerExecutor,
  send,
  setupChain,
  storeKey,
  until,
} from './helpers/world.ts'

const FEE = parseEther('0.001')

let chain: Chain
let kgNode: Libp2p
let exec: ExecutorSide
let parts: KeyguardParts
let keyguard: Keyguard
let otherOwner: Wallet
let ours: string
let theirs: string
const events: KeyguardEvent[] = []
const warnings: { message: string; fields?: unknown }[] = []

async function feeCapsule(owner: Wallet): Promise<string> {
  const policy = await deployPolicy(owner, all(environment(chain.measurement), fee('0.001')), {
    nodeRegistry: chain.addresses.nodeRegistry,
  })
  const capsuleId = hexlify(randomBytes(32))
  await send(
    chain.c.capsuleRegistry
      .connect(owner)
      .register(
        capsuleId,
        policy.address,
        'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
        hexlify(randomBytes(32)),
        kgNode.peerId.toMultihash().bytes,
        hexlify(randomBytes(32)),
      ),
  )
  return capsuleId
}

function executorRequest(capsuleId: string) {
  return signAccessRequest(
    {
      capsuleId: getBytes(capsuleId),
      executor: addressToBytes(chain.executor.address as `0x${string}`),
      ephemeralKey: getBytes(exec.newEphemeral()),
      measurement: getBytes(chain.measurement),
      jobParamsHash: keccak_256(new Uint8Array(0)),
      fee: FEE,
      nonce: randomBytes(32),
      expiry: BigInt(Math.floor(Date.now() / 1000) + 300),
      jobParams: new Uint8Array(0),
    },
    {
      chainId: BigInt(chain.addresses.chainId),
      verifyingContract: chain.addresses.accessController as `0x${string}`,
    },
    getBytes(chain.executor.privateKey),
  )
}

beforeAll(async () => {
  ;[chain, kgNode, exec] = await Promise.all([setupChain(), createNode(), executorSide()])
  otherOwner = chain.anvil.signers[4] as Wallet
  await registerExecutor(chain, chain.executor, exec.node)
  // One fee's worth of deposit for two releases.
  await send(chain.c.accessController.connect(chain.executor).deposit({ value: FEE }))
  parts = await keyguardParts()
  ours = await feeCapsule(chain.owner)
  theirs = await feeCapsule(otherOwner)
  await storeKey(parts, ours, randomBytes(32))
  keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: 0,
    startBlock: chain.addresses.deployBlock,
    pollIntervalMs: 600_000,
    fastPath: { enabled: true },
  })({
    ...parts,
    chain: chainClientFor(chain),
    libp2p: kgNode,
    logger: { info: () => {}, warn: (message, fields) => warnings.push({ message, fields }) },
  })
  for (const type of ['fast-path-granted', 'audit-recorded', 'audit-shortfall', 'audit-alert']) {
    keyguard.events.addEventListener(type, (e) => events.push((e as CustomEvent).detail))
  }
  await keyguard.start()
  await exec.node.peerStore.merge(kgNode.peerId, { multiaddrs: kgNode.getMultiaddrs() })
}, 60_000)

afterAll(async () => {
  await chain?.anvil.provider.send('evm_setAutomine', [true])
  await keyguard?.stop()
  await Promise.all([kgNode?.stop(), exec?.stop()])
  await chain?.anvil.stop()
  await parts?.cleanup()
})

describe('audit paid from the executor stake', () => {
  it('raises audit-shortfall (and logs it) when our audit lands after another owner drained the deposit', async () => {
    const provider = chain.anvil.provider
    // The other owner's keyguard released first; its audit is not mined yet.
    const req = executorRequest(theirs)
    const record = {
      capsuleId: theirs,
      executor: chain.executor.address,
      ephemeralKey: hexlify(req.ephemeralKey),
      measurement: hexlify(req.measurement),
      jobParamsHash: hexlify(req.jobParamsHash),
      fee: req.fee,
      nonce: toBeHex(BigInt(hexlify(req.nonce)), 32),
      expiry: req.expiry,
    }
    await provider.send('evm_setAutomine', [false])
    try {
      const data = chain.c.accessController.interface.encodeFunctionData('recordFastPathGrant', [
        record,
        '0x',
        hexlify(req.signature),
      ])
      // A higher tip: mined ahead of our audit in the same block.
      await otherOwner.sendTransaction({
        to: chain.addresses.accessController,
        data,
        gasLimit: 1_000_000n,
        maxPriorityFeePerGas: 10_000_000_000n,
        maxFeePerGas: 110_000_000_000n,
      })
      // Our keyguard sees the whole deposit (the other audit is pending) and releases.
      const res = await request(exec.node, kgNode.peerId, fastPathProtocol, executorRequest(ours))
      expect(res.status).toBe('granted')
      await until(async () => {
        const pool = (await provider.send('txpool_status', [])) as { pending: string }
        return Number(pool.pending) >= 2
      }, 20_000)
      await provider.send('evm_mine', [])
    } finally {
      await provider.send('evm_setAutomine', [true])
    }
    await until(() => events.some((e) => e.type === 'audit-recorded'), 20_000)
    const granted = events.find((e) => e.type === 'fast-path-granted')
    const shortfall = events.find((e) => e.type === 'audit-shortfall')
    expect(shortfall).toEqual({
      type: 'audit-shortfall',
      grantId: granted?.type === 'fast-path-granted' ? granted.grantId : 'missing',
      capsuleId: ours,
      executor: chain.executor.address,
      fee: FEE.toString(),
      fromStake: FEE.toString(),
      uncovered: '0',
      transactionHash: expect.stringMatching(/^0x[0-9a-f]{64}$/),
    })
    expect(warnings.map((w) => w.message)).toContain(
      'fast path: audit paid from the executor stake',
    )
    // The chain agrees: the deposit is gone and the stake paid our fee.
    expect(await chain.c.accessController.deposits(chain.executor.address)).toBe(0n)
    expect(await chain.c.nodeRegistry.drawnForAudits(chain.executor.address)).toBe(FEE)
  }, 60_000)
})
