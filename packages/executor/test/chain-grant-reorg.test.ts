/**
 * The chain path across a reorg that re-includes the executor's request under another grant id
 * (real anvil, `anvil_reorg`; keyguard 2 confirmations deep).
 *
 * The executor reads its grant id from its receipt (one block deep). A one-block reorg puts
 * another executor's request for the same capsule ahead of it in the new block: the request is
 * mined again with the next run index, so its grant id changes. The keyguard serves the grant that
 * is on chain, sealed to this run's ephemeral key. Before, the executor refused that release
 * ("names another grant"): the key was out, the run counted and paid, nothing ran. Now the
 * executor checks the released grant on chain (same capsule, its ephemeral key) and runs under it.
 *
 * It checks the grant's executor too: another executor can copy the ephemeral key (public once
 * the request is in the mempool) into its own request; a release of that grant is refused (a
 * keyguard that pushes it to this executor is the fault injected).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { privateKeySigner } from '@digicap/capsule-core'
import { getBytes, hexlify, randomBytes, Transaction, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  acquireKey,
  ethersExecutorChain,
  type ReleaseInbox,
  type StageEvent,
} from '../src/index.ts'
import { MIN_STAKE, makeCapsule, setupWorld, type World } from './helpers/world.ts'

let w: World
let tmpRoot: string

beforeAll(async () => {
  tmpRoot = await mkdtemp(join(tmpdir(), 'exec-reorg-'))
  w = await setupWorld({ tmpRoot, fastPath: false, confirmations: 2 })
  // A second executor, registered, whose request the reorg puts first.
  await ethersExecutorChain({ addresses: w.addresses, signer: w.other }).registerNode({
    peerId: getBytes(hexlify(new Uint8Array(38).fill(7))),
    attestationKeyHash: new Uint8Array(32),
    roles: 1,
    stake: MIN_STAKE,
  })
}, 60_000)

afterAll(async () => {
  await w?.stop()
  await rm(tmpRoot, { recursive: true, force: true })
})

describe('chain path across a reorg', () => {
  it('runs under the grant id its request got in the new block', async () => {
    const capsule = await makeCapsule(w, {
      plaintext: new TextEncoder().encode('reorged'),
      runtime: { kind: 'data' },
    })
    const provider = w.anvil.provider
    const ac = w.c.accessController
    const measurement = hexlify(w.measurement)
    const otherRequest = await ac
      .connect(w.other)
      .requestAccess.populateTransaction(
        capsule.capsuleId,
        hexlify(new Uint8Array(32).fill(9)),
        measurement,
        '0x',
      )
    const otherSigned = await (w.other as Wallet).signTransaction(
      await (w.other as Wallet).populateTransaction({ ...otherRequest, gasLimit: 1_000_000 }),
    )
    const stages: StageEvent[] = []
    let reorged: Promise<void> | undefined
    let receiptGrant: string | undefined
    const run = w.executor.runCapsule(capsule.cid, {
      fast: false,
      onStage: (e) => {
        stages.push(e)
        const grantId = e.detail?.grantId
        if (e.stage === 'grant' && typeof grantId === 'string' && reorged === undefined) {
          receiptGrant = grantId
          reorged = (async () => {
            // The executor's request, mined; the reorg puts the other request ahead of it.
            const [log] = await ac.queryFilter(ac.filters.AccessGranted!(grantId))
            const mined = await provider.getTransaction(log?.transactionHash ?? '')
            const raw = Transaction.from(mined as never).serialized
            await provider.send('anvil_reorg', [
              1,
              [
                [otherSigned, 0],
                [raw, 0],
              ],
            ])
            await provider.send('anvil_mine', ['0x3'])
          })()
        }
      },
    })
    const res = await run
    await reorged
    expect(new TextDecoder().decode(res.result)).toBe('data:7')
    expect(receiptGrant).toMatch(/^0x[0-9a-f]{64}$/)
    // The grant the run used is the one the chain holds now (run index 1), not the receipt's.
    expect(res.grantId).not.toBe(receiptGrant)
    const g = await ac.getGrant(res.grantId)
    expect(g.runIndex).toBe(1n)
    await expect(ac.getGrant(receiptGrant as string)).rejects.toThrow()
  }, 60_000)

  it('refuses a release of a grant with its capsule and ephemeral key but another executor', async () => {
    const capsule = await makeCapsule(w, {
      plaintext: new TextEncoder().encode('copied'),
      runtime: { kind: 'data' },
    })
    const ac = w.c.accessController
    let copied: string | undefined
    // A lying keyguard: it pushes this run the grant of another executor's request that copied
    // this run's ephemeral key (the same capsule, the same key; only the executor differs).
    const inbox: ReleaseInbox = {
      async expect(capsuleId, keys) {
        const receipt = await (
          await ac
            .connect(w.other)
            .requestAccess(
              hexlify(capsuleId),
              hexlify(keys.publicKey),
              hexlify(w.measurement),
              '0x',
            )
        ).wait()
        copied = ac.interface.parseLog(receipt?.logs[0] as never)?.args[0] as string
        return { grantId: getBytes(copied), dataKey: randomBytes(32) }
      },
      stop: async () => {},
    }
    const attempt = acquireKey({
      libp2p: {} as never,
      inbox,
      chain: ethersExecutorChain({ addresses: w.addresses, signer: w.executorWallet }),
      signer: privateKeySigner(w.executorWallet.privateKey as `0x${string}`),
      keyguardPeer: {} as never,
      capsuleId: getBytes(capsule.capsuleId),
      measurement: w.measurement,
      jobParams: new Uint8Array(0),
      fee: 0n,
      fast: false,
      fallbackToChain: false,
      fastTimeoutMs: 10_000,
      maxReleaseWaitMs: 30_000,
    })
    await expect(attempt).rejects.toMatchObject({ code: 'KEY_RELEASE_INVALID' })
    // The copied grant is on chain, for this capsule and this run's key, naming the other executor.
    const g = await ac.getGrant(copied as string)
    expect(g.capsuleId).toBe(capsule.capsuleId)
    expect(g.executor).toBe(await w.other.getAddress())
  }, 60_000)
})
