/**
 * The owner's node as a library, on real parts (a real anvil, a real swtpm behind the sealer,
 * real helia/libp2p on loopback): init on a dev chain, seal, status, the keyguard daemon
 * (serve), the local re-wrap from the words, and the typed refusals around them.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connectDigicap, maxRuns } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { getAddress, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createOwnerNode,
  type InitOwnerNodeResult,
  initOwnerNode,
  loadOwnerNodeConfig,
  type OwnerNode,
  ownerNodePaths,
} from '../../src/node/index.ts'

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter((e) => e.isFile()).map((e) => e.name)
}

describe('@digicap/owner/node', () => {
  let anvil: Anvil
  let tpm: Swtpm
  let dir: string
  let dataDir: string
  let init: InitOwnerNodeResult
  let node: OwnerNode
  let sealedId: string

  beforeAll(async () => {
    ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
    dir = await mkdtemp(join(tmpdir(), 'owner-node-'))
    dataDir = join(dir, 'node')
    init = await initOwnerNode({
      dataDir,
      rpcUrl: anvil.rpcUrl,
      sealer: { kind: 'tpm2', tcti: tpm.tcti },
      deploy: true,
      listen: ['/ip4/127.0.0.1/tcp/0'],
    })
    node = await createOwnerNode(await loadOwnerNodeConfig(dataDir))
  })
  afterAll(async () => {
    await Promise.allSettled([anvil?.stop(), tpm?.stop()])
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('init writes the config, deploys on a dev chain and approves the operator; a second init is refused', async () => {
    expect(init.mnemonic.split(' ')).toHaveLength(24)
    expect(init.deployed).toBe(true)
    expect(init.operator).toMatchObject({ approved: true })
    expect(await anvil.provider.getCode(init.config.contracts.capsuleRegistry)).not.toBe('0x')
    expect(await loadOwnerNodeConfig(dataDir)).toEqual(init.config)
    await expect(
      initOwnerNode({
        dataDir,
        rpcUrl: anvil.rpcUrl,
        sealer: { kind: 'tpm2', tcti: tpm.tcti },
        deploy: true,
      }),
    ).rejects.toMatchObject({ code: 'ALREADY_INITIALISED' })
    await expect(
      createOwnerNode({ ...init.config, dataDir: join(dir, 'empty') }),
    ).rejects.toMatchObject({ code: 'NOT_INITIALISED' })
  })

  it('seals, registers and keeps the capsule; bad input fails typed before any transaction', async () => {
    const file = join(dir, 'data.txt')
    await writeFile(file, 'owner node data')
    const nonce = await anvil.provider.getTransactionCount(init.owner.address)
    for (const [options, code] of [
      [{ file, policy: 'maxRuns(' }, 'POLICY_EXPRESSION'],
      [{ file: join(dir, 'missing'), policy: 'maxRuns(1)' }, 'INPUT_FILE'],
      [{ file, policy: 'maxRuns(1)', entry: 'main.js' }, 'CONFIG'],
      [{ file, policy: 'maxRuns(1)', runtime: 'quickjs' }, 'CONFIG'],
      [{ file, policy: 'maxRuns(1)', runtime: 'lua' }, 'RUNTIME_UNSUPPORTED'],
    ] as const) {
      await expect(
        node.seal(options as Parameters<OwnerNode['seal']>[0]),
        JSON.stringify(options),
      ).rejects.toMatchObject({ code })
    }
    expect(await anvil.provider.getTransactionCount(init.owner.address)).toBe(nonce)

    const r = await node.seal({ file, policy: 'maxRuns(2)' })
    const onChain = await connectDigicap(
      init.config.contracts,
      anvil.provider,
    ).capsuleRegistry.getCapsule(r.capsuleId)
    expect([onChain.owner, onChain.cid]).toEqual([init.owner.address, r.cid])
    expect(r.announced).toEqual({ ok: false, reason: 'serve-not-running' })
    expect(await node.keyStore.list()).toContain(r.capsuleId)
    expect(existsSync(r.capsulePath)).toBe(true)
    // the capsule was written once: the blockstore keeps a reference to capsule.bin, no copy
    // (serve, below, pins and serves it from there)
    const ipfs = ownerNodePaths(dataDir).ipfs
    expect(await filesUnder(join(ipfs, 'blocks'))).toEqual([])
    expect(await filesUnder(join(ipfs, 'filestore'))).toHaveLength(1)
    const record = JSON.parse(
      await readFile(join(dataDir, 'capsules', r.capsuleId, 'capsule.json'), 'utf8'),
    )
    expect(record).toMatchObject({ capsuleId: r.capsuleId, cid: r.cid, runtime: 'data' })
    sealedId = r.capsuleId
  })

  it('movePolicy moves a sealed capsule on chain and in its key record; again, it sends nothing', async () => {
    const next = await deployPolicy(anvil.signers[5] as Wallet, maxRuns(7), {
      nodeRegistry: init.config.contracts.nodeRegistry,
    })
    const registry = connectDigicap(init.config.contracts, anvil.provider).capsuleRegistry
    const old = (await registry.getCapsule(sealedId)).policy
    expect((await node.keyStore.get(sealedId))?.metadata.policy).toBe(old)
    const moved = await node.movePolicy({ capsuleId: sealedId, policy: next.address })
    expect(moved).toMatchObject({
      previousPolicy: old,
      policy: getAddress(next.address),
      recordUpdated: true,
    })
    expect((await registry.getCapsule(sealedId)).policy).toBe(getAddress(next.address))
    expect((await node.keyStore.get(sealedId))?.metadata.policy).toBe(getAddress(next.address))
    const nonce = await anvil.provider.getTransactionCount(init.owner.address)
    expect(await node.movePolicy({ capsuleId: sealedId, policy: next.address })).toEqual({
      capsuleId: sealedId,
      previousPolicy: getAddress(next.address),
      policy: getAddress(next.address),
      recordUpdated: false,
    })
    expect(await anvil.provider.getTransactionCount(init.owner.address)).toBe(nonce)
  })

  it('movePolicy deploys an expression first and notes the move in the capsule folder; bad input sends nothing', async () => {
    const registry = connectDigicap(init.config.contracts, anvil.provider).capsuleRegistry
    const folder = join(ownerNodePaths(dataDir).capsules, sealedId.toLowerCase())
    const sent = () => anvil.provider.getTransactionCount(init.owner.address)
    const nonce = await sent()
    await expect(
      node.movePolicy({ capsuleId: sealedId, expression: 'maxRuns(' }),
    ).rejects.toMatchObject({ code: 'POLICY_EXPRESSION' })
    await expect(node.movePolicy({ capsuleId: sealedId })).rejects.toThrow(TypeError)
    await expect(
      node.movePolicy({
        capsuleId: sealedId,
        policy: init.owner.address,
        expression: 'maxRuns(5)',
      }),
    ).rejects.toThrow(TypeError)
    expect(await sent()).toBe(nonce)

    const before = (await registry.getCapsule(sealedId)).policy
    const moved = await node.movePolicy({ capsuleId: sealedId, expression: 'maxRuns(5)' })
    expect(moved).toMatchObject({
      previousPolicy: before,
      recordUpdated: true,
      deployedPolicy: { address: moved.policy, reused: false },
    })
    expect(await sent()).toBe(nonce + 2) // the deployment and updatePolicy
    expect((await registry.getCapsule(sealedId)).policy).toBe(moved.policy)
    expect((await node.keyStore.get(sealedId))?.metadata.policy).toBe(moved.policy)
    expect(await anvil.provider.getCode(moved.policy)).not.toBe('0x')
    // The folder describes the new policy, keeps the old one's files, and the note is gone.
    const json = (name: string) => readFile(join(folder, name), 'utf8').then(JSON.parse)
    expect(await json('capsule.json')).toMatchObject({
      capsuleId: sealedId,
      policy: moved.policy,
      policyMoveTransaction: moved.transactionHash,
    })
    expect(await json('policy.json')).toMatchObject({
      address: moved.policy,
      expression: 'maxRuns(5)',
      transactionHash: moved.deployedPolicy?.transactionHash,
    })
    expect(await readFile(join(folder, 'policy.sol'), 'utf8')).toContain('5')
    expect(await json(`policy-${before.toLowerCase()}.json`)).toEqual({ address: before })
    expect(existsSync(join(folder, 'policy-next.json'))).toBe(false)
  })

  it('movePolicy run again after a crash that followed its deployment re-uses that deployment, and only that one', async () => {
    const registry = connectDigicap(init.config.contracts, anvil.provider).capsuleRegistry
    const folder = join(ownerNodePaths(dataDir).capsules, sealedId.toLowerCase())
    const sent = () => anvil.provider.getTransactionCount(init.owner.address)
    // What a run cut off after its deployment leaves: the note, the chain not moved yet. (The
    // policy's deployer does not matter to the registry; a test account deploys it here.)
    const left = await deployPolicy(anvil.signers[5] as Wallet, maxRuns(4), {
      nodeRegistry: init.config.contracts.nodeRegistry,
    })
    const note = {
      expression: 'maxRuns(4)',
      address: left.address,
      transactionHash: left.transactionHash,
      source: left.source,
    }
    await writeFile(join(folder, 'policy-next.json'), JSON.stringify(note))
    const nonce = await sent()
    const finished = await node.movePolicy({ capsuleId: sealedId, expression: 'maxRuns(4)' })
    expect(finished).toMatchObject({
      policy: getAddress(left.address),
      deployedPolicy: { reused: true, transactionHash: left.transactionHash },
    })
    expect(await sent()).toBe(nonce + 1) // updatePolicy only: no second deployment
    expect((await registry.getCapsule(sealedId)).policy).toBe(getAddress(left.address))

    // A note for another expression, or naming an address with no code, or with another
    // policy's code (ADR 0091: a quorum must read the expression's code there), is not re-used.
    for (const [expression, stale] of [
      ['maxRuns(6)', { ...note }],
      ['maxRuns(8)', { ...note, expression: 'maxRuns(8)', address: init.owner.address }],
      ['maxRuns(9)', { ...note, expression: 'maxRuns(9)' }],
    ] as const) {
      await writeFile(join(folder, 'policy-next.json'), JSON.stringify(stale))
      const n = await sent()
      const r = await node.movePolicy({ capsuleId: sealedId, expression })
      expect(r.deployedPolicy?.reused, expression).toBe(false)
      expect(r.policy).not.toBe(getAddress(stale.address))
      expect(await sent()).toBe(n + 2)
      expect((await registry.getCapsule(sealedId)).policy).toBe(r.policy)
    }
  })

  it('status reads the node, its card and the chain without starting it; serve runs the keyguard daemon', async () => {
    const before = await node.status()
    expect(before).toMatchObject({
      capsules: 1,
      chain: { reachable: true },
      operator: { approved: true },
      daemon: { running: false },
      owner: { address: init.owner.address, peerId: init.owner.peerId },
    })
    expect(before.card?.peerId).toBe(init.owner.peerId)

    const running = await node.serve({ statusIntervalMs: 60_000 })
    try {
      expect(running.peerId).toBe(init.owner.peerId)
      expect(running.pinned).toBe(1)
      expect(await running.keyguard.status()).toMatchObject({ running: true })
      const during = await node.status()
      expect(during.daemon).toMatchObject({ running: true, pid: process.pid })
      expect(during.daemon.keyguard?.running).toBe(true)
    } finally {
      await running.stop()
    }
    await running.stop() // idempotent
    expect(existsSync(ownerNodePaths(dataDir).serve)).toBe(false)
    expect((await node.status()).daemon.running).toBe(false)
  })

  it('re-wraps the local key store from the words; words of another owner are refused', async () => {
    const r = await node.recover({ mnemonic: init.mnemonic })
    expect(r.recovered).toHaveLength(1)
    expect(r.failed).toEqual([])
    expect(r.owner).toBe(init.owner.address)
    const other = (await import('@digicap/keyguard')).generateMnemonic()
    await expect(node.recover({ mnemonic: other })).rejects.toMatchObject({
      code: expect.stringMatching(/RECOVERY|MNEMONIC/),
    })
  })

  it('status reports an unreachable chain instead of throwing', async () => {
    const offline = await createOwnerNode({ ...node.config, rpcUrl: 'http://127.0.0.1:9' })
    const s = await offline.status()
    expect(s.chain).toMatchObject({ reachable: false, error: { code: 'CHAIN_UNREACHABLE' } })
  })
})
