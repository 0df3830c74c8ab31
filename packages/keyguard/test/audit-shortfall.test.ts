/**
 * The owner sees when a fast-path audit was paid from the executor's stake (contracts ADR 0006,
 * `AuditShortfall`): two keyguards (capsules of two owners) release to one executor against one
 * deposit before either audit is mined; the other owner's audit lands first, so ours is paid
 * from the stake, and the keyguard raises `audit-shortfall` and logs it. Real anvil (automine
 * paused to put both audits in one block, as in contracts' audit-race test) and libp2p.
 */
import { all, environment, fee } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { hexlify, parseEther, randomBytes, toBeHex, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { send, storeKey, until } from './helpers/world.ts'

const FEE = parseEther('0.001')

let w: KeyguardWorld
let otherOwner: Wallet
let ours: string
let theirs: string
const warnings: { message: string; fields?: unknown }[] = []

async function feeCapsule(owner: Wallet): Promise<string> {
  const policy = await deployPolicy(owner, all(environment(w.chain.measurement), fee('0.001')), {
    nodeRegistry: w.chain.addresses.nodeRegistry,
  })
  const capsuleId = hexlify(randomBytes(32))
  await send(
    w.chain.c.capsuleRegistry
      .connect(owner)
      .register(
        capsuleId,
        policy.address,
        'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
        hexlify(randomBytes(32)),
        w.kgNode.peerId.toMultihash().bytes,
        hexlify(randomBytes(32)),
      ),
  )
  return capsuleId
}

const executorRequest = (capsuleId: string) =>
  w.signed({ capsuleId, expiresIn: 300, fields: { fee: FEE } })

beforeAll(async () => {
  w = await keyguardWorld({
    capsules: 0,
    prepare: async (world) => {
      w = world // feeCapsule reads it
      otherOwner = w.chain.anvil.signers[4] as Wallet
      // One fee's worth of deposit for two releases.
      await send(w.chain.c.accessController.connect(w.chain.executor).deposit({ value: FEE }))
      ours = await feeCapsule(w.chain.owner)
      theirs = await feeCapsule(otherOwner)
      await storeKey(w.parts, ours, randomBytes(32))
    },
    keyguard: { pollIntervalMs: 600_000, fastPath: { enabled: true } },
    logger: { info: () => {}, warn: (message, fields) => warnings.push({ message, fields }) },
    events: ['fast-path-granted', 'audit-recorded', 'audit-shortfall', 'audit-alert'],
  })
  // Stopped first: the keyguard's audits are mined again before it stops.
  w.defer('automine', () => w.chain.anvil.provider.send('evm_setAutomine', [true]))
}, 60_000)

afterAll(() => w?.stop())

describe('audit paid from the executor stake', () => {
  it('raises audit-shortfall (and logs it) when our audit lands after another owner drained the deposit', async () => {
    const provider = w.chain.anvil.provider
    // The other owner's keyguard released first; its audit is not mined yet.
    const req = executorRequest(theirs)
    const record = {
      capsuleId: theirs,
      executor: w.chain.executor.address,
      ephemeralKey: hexlify(req.ephemeralKey),
      measurement: hexlify(req.measurement),
      jobParamsHash: hexlify(req.jobParamsHash),
      fee: req.fee,
      nonce: toBeHex(BigInt(hexlify(req.nonce)), 32),
      expiry: req.expiry,
    }
    await provider.send('evm_setAutomine', [false])
    try {
      const data = w.chain.c.accessController.interface.encodeFunctionData('recordFastPathGrant', [
        record,
        '0x',
        hexlify(req.signature),
      ])
      // A higher tip: mined ahead of our audit in the same block.
      await otherOwner.sendTransaction({
        to: w.chain.addresses.accessController,
        data,
        gasLimit: 1_000_000n,
        maxPriorityFeePerGas: 10_000_000_000n,
        maxFeePerGas: 110_000_000_000n,
      })
      // Our keyguard sees the whole deposit (the other audit is pending) and releases.
      const res = await w.ask(executorRequest(ours))
      expect(res.status).toBe('granted')
      await until(async () => {
        const pool = (await provider.send('txpool_status', [])) as { pending: string }
        return Number(pool.pending) >= 2
      }, 20_000)
      await provider.send('evm_mine', [])
    } finally {
      await provider.send('evm_setAutomine', [true])
    }
    await until(() => w.events.some((e) => e.type === 'audit-recorded'), 20_000)
    const granted = w.events.find((e) => e.type === 'fast-path-granted')
    const shortfall = w.events.find((e) => e.type === 'audit-shortfall')
    expect(shortfall).toEqual({
      type: 'audit-shortfall',
      grantId: granted?.type === 'fast-path-granted' ? granted.grantId : 'missing',
      capsuleId: ours,
      executor: w.chain.executor.address,
      fee: FEE.toString(),
      fromStake: FEE.toString(),
      uncovered: '0',
      transactionHash: expect.stringMatching(/^0x[0-9a-f]{64}$/),
    })
    expect(warnings.map((w) => w.message)).toContain(
      'fast path: audit paid from the executor stake',
    )
    // The chain agrees: the deposit is gone and the stake paid our fee.
    expect(await w.chain.c.accessController.deposits(w.chain.executor.address)).toBe(0n)
    expect(await w.chain.c.nodeRegistry.drawnForAudits(w.chain.executor.address)).toBe(FEE)
  }, 60_000)
})
