/**
 * `OwnerNode.movePolicy({ expression })` names the policy the owner created, whatever one RPC
 * says (ADR 0091): the same computed address and quorum code check as `seal` (ADR 0048's
 * amendment). Before, the move deployed through ethers, which took the address from the nonce
 * the RPC handed it and waited for any code there: an RPC answering an old nonce (one the
 * owner created a laxer policy with) and swallowing the creation moved the capsule to that
 * older policy, on the real chain and in the key record.
 * Real anvil, real swtpm behind the sealer, real solc; the liar is a JSON-RPC server in front
 * of the anvil (fault injection).
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connectDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil, startRpcProxy } from '@digicap/contracts/testing'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { getCreateAddress, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { solcPolicyDeployer } from '../../src/index.ts'
import {
  createOwnerNode,
  type InitOwnerNodeResult,
  initOwnerNode,
  loadOwnerNodeConfig,
  type OwnerNode,
  ownerNodePaths,
} from '../../src/node/index.ts'
import { startNonceLiar } from '../helpers/nonce-lying-rpc.ts'

const SLOW = 240_000

describe('movePolicy by expression through a lying RPC', () => {
  let anvil: Anvil
  let tpm: Swtpm
  let dir: string
  let init: InitOwnerNodeResult
  let node: OwnerNode
  let olderPolicy: string
  let olderNonce: number
  let capsuleId: string
  const registry = () => connectDigicap(init.config.contracts, anvil.provider).capsuleRegistry
  const sent = () => anvil.provider.getTransactionCount(init.owner.address)
  /** The node with `rpcUrl` as its RPC (the one it sends through) and two honest ones. */
  const nodeBehind = (rpcUrl: string) =>
    createOwnerNode({ ...init.config, rpcUrl, rpcUrls: [anvil.rpcUrl, anvil.rpcUrl], quorum: 2 })

  beforeAll(async () => {
    ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
    dir = await mkdtemp(join(tmpdir(), 'move-policy-liar-'))
    const dataDir = join(dir, 'node')
    init = await initOwnerNode({
      dataDir,
      rpcUrl: anvil.rpcUrl,
      sealer: { kind: 'tpm2', tcti: tpm.tcti },
      deploy: true,
      listen: ['/ip4/127.0.0.1/tcp/0'],
    })
    node = await createOwnerNode(await loadOwnerNodeConfig(dataDir))
    const file = join(dir, 'data.txt')
    await writeFile(file, 'move policy data')
    // The owner's older, laxer policy: the creation of this capsule's seal.
    olderNonce = await sent()
    olderPolicy = (await node.seal({ file, policy: 'maxRuns(1000000)' })).policy
    expect(olderPolicy).toBe(getCreateAddress({ from: init.owner.address, nonce: olderNonce }))
    capsuleId = (await node.seal({ file, policy: 'maxRuns(1)' })).capsuleId
  }, SLOW)

  afterAll(async () => {
    await Promise.allSettled([anvil?.stop(), tpm?.stop()])
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it(
    'a nonce lie (the owner’s older, laxer policy) fails POLICY_CODE: nothing moves, on chain or in the record',
    async () => {
      const before = (await registry().getCapsule(capsuleId)).policy
      const nonce = await sent()
      const liar = await startNonceLiar(anvil.rpcUrl, { nonce: olderNonce })
      try {
        const lied = await nodeBehind(liar.url)
        // Settled either way, so that a move that went through shows where it went.
        const outcome = await lied
          .movePolicy({ capsuleId, expression: 'maxRuns(2)' })
          .catch((err: unknown) => err)
        expect(outcome).toMatchObject({ code: 'POLICY_CODE' })
      } finally {
        await liar.close()
      }
      expect(liar.swallowed.size).toBe(1)
      expect((await registry().getCapsule(capsuleId)).policy).toBe(before)
      expect((await node.keyStore.get(capsuleId))?.metadata.policy).toBe(before)
      expect(await sent()).toBe(nonce) // the creation was swallowed, updatePolicy never sent
      const folder = join(ownerNodePaths(init.config.dataDir).capsules, capsuleId.toLowerCase())
      expect(existsSync(join(folder, 'policy-next.json'))).toBe(false)
    },
    SLOW,
  )

  it(
    'a receipt lie (an attacker’s laxer policy) does not pick the policy: the move names what the owner created',
    async () => {
      const attacker = await solcPolicyDeployer(anvil.signers[3] as Wallet, {
        nodeRegistry: init.config.contracts.nodeRegistry,
      }).deploy('maxRuns(1000000)')
      const liar = await startRpcProxy(anvil.rpcUrl, (call, result) =>
        call.method === 'eth_getTransactionReceipt' &&
        typeof (result as { contractAddress?: unknown } | null)?.contractAddress === 'string'
          ? { ...(result as object), contractAddress: attacker.address }
          : result,
      )
      const nonce = await sent()
      try {
        const moved = await (await nodeBehind(liar.url)).movePolicy({
          capsuleId,
          expression: 'maxRuns(2)',
        })
        const created = getCreateAddress({ from: init.owner.address, nonce })
        expect(moved.policy).toBe(created)
        expect(moved.policy).not.toBe(attacker.address)
        expect((await registry().getCapsule(capsuleId)).policy).toBe(created)
        expect((await node.keyStore.get(capsuleId))?.metadata.policy).toBe(created)
      } finally {
        await liar.close()
      }
    },
    SLOW,
  )
})
