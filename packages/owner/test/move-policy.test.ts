/**
 * The owner moves a capsule to another policy (ADR 0077), on real parts: anvil with Digicap, the
 * keyguard package's own runtime with a tpm2 sealer on a swtpm, libp2p on loopback, a registered
 * executor that opens key releases. Before this tool an owner's `updatePolicy` left the key record
 * naming the old policy and every grant was refused `policy-mismatch` (ADR 0071): the first test
 * shows that state (a raw `updatePolicy`, as any wallet sends it) and that `moveCapsulePolicy`
 * recovers from it without a transaction, which is also how a crash between its two steps is
 * recovered. Then the whole move, and what a stranger can do: nothing to the record.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeHpkeSealed, generateX25519KeyPair, hpkeOpen } from '@digicap/capsule-core'
import {
  connectDigicap,
  createProvider,
  type DigicapAddresses,
  decodeRevert,
  deployDigicap,
  maxRuns,
} from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import {
  type ChainClient,
  createKeyguard,
  createKeyStore,
  createReleaseJournal,
  ethersChainClient,
  type Keyguard,
  type KeyguardEvent,
  type KeyStore,
  PolicyFollowError,
  type Sealer,
  tpm2Sealer,
  wrapDataKey,
} from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { handle, keyReleaseProtocol, type ReleaseAck } from '@digicap/protocol'
import { multiaddr } from '@multiformats/multiaddr'
import { getAddress, hexlify, parseEther, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ethersPolicyUpdater, moveCapsulePolicy } from '../src/index.ts'

let anvil: Anvil
let tpm: Swtpm
let dir: string
let contracts: DigicapAddresses
let owner: Wallet
let stranger: Wallet
let sealer: Sealer
let keyStore: KeyStore
let chain: ChainClient
let piNode: DigicapNode
let keyguard: Keyguard
let executorNode: DigicapNode
const events: KeyguardEvent[] = []
const ephemeral = new Map<string, Uint8Array>()
const released = new Map<string, Uint8Array>()
/** Two policies the executor satisfies: where capsules start, and where they move. */
const policies = { old: '', next: '', strangers: '' }

beforeAll(async () => {
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
  dir = await mkdtemp(join(tmpdir(), 'owner-move-policy-'))
  contracts = await deployDigicap(anvil.signers[0] as Wallet)
  owner = anvil.signers[1] as Wallet
  stranger = anvil.signers[3] as Wallet
  for (const [name, who, runs] of [
    ['old', owner, 1000],
    ['next', owner, 999],
    ['strangers', stranger, 998],
  ] as const) {
    policies[name] = (
      await deployPolicy(who, maxRuns(runs), { nodeRegistry: contracts.nodeRegistry })
    ).address
  }
  sealer = tpm2Sealer({ tcti: tpm.tcti, createIfMissing: true })
  keyStore = await createKeyStore(join(dir, 'keys'))
  piNode = await createDigicapNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  chain = ethersChainClient({
    providers: [createProvider(anvil.rpcUrl, Number(anvil.chainId))],
    addresses: contracts,
    chainId: anvil.chainId,
  })
  keyguard = createKeyguard({
    dataDir: join(dir, 'keyguard'),
    confirmations: 0,
    startBlock: contracts.deployBlock,
    pollIntervalMs: 100,
    fastPath: { enabled: false },
  })({
    sealer,
    keyStore,
    journal: await createReleaseJournal(join(dir, 'journal')),
    chain,
    libp2p: piNode.libp2p,
  })
  for (const type of ['released', 'grant-refused', 'release-failed']) {
    keyguard.events.addEventListener(type, (e) =>
      events.push((e as CustomEvent<KeyguardEvent>).detail),
    )
  }
  await keyguard.start()

  executorNode = await createDigicapNode({})
  await handle(executorNode.libp2p, keyReleaseProtocol, async (r): Promise<ReleaseAck> => {
    for (const priv of ephemeral.values()) {
      try {
        released.set(hexlify(r.grantId), await hpkeOpen(priv, decodeHpkeSealed(r.hpke), r.grantId))
        return { grantId: r.grantId, status: 'ok' }
      } catch {
        // another run's key
      }
    }
    return { grantId: r.grantId, status: 'open-failed' }
  })
  await executorNode.libp2p.dial(multiaddr(piNode.multiaddrs()[0] as string))
  const executor = connectDigicap(contracts, anvil.signers[2] as Wallet)
  await (
    await executor.nodeRegistry.register(
      executorNode.libp2p.peerId.toMultihash().bytes,
      hexlify(randomBytes(32)),
      1,
      { value: parseEther('0.01') },
    )
  ).wait()
}, 120_000)

afterAll(async () => {
  await keyguard?.stop()
  await Promise.all([piNode?.stop(), executorNode?.stop()])
  await Promise.all([anvil?.stop(), tpm?.stop()])
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** A capsule registered by `by` under `policy`, its key stored as the owner's seal pipeline does. */
async function capsule(
  policy: string,
  by: Wallet = owner,
): Promise<{ id: string; key: Uint8Array }> {
  const id = hexlify(randomBytes(32))
  const key = new Uint8Array(randomBytes(32))
  await keyStore.put({
    capsuleId: id,
    wrappedKeys: await wrapDataKey(key, {
      sealer,
      recoveryPublicKey: generateX25519KeyPair().publicKey,
    }),
    metadata: { owner: owner.address, policy },
  })
  const { capsuleRegistry } = connectDigicap(contracts, by)
  await (
    await capsuleRegistry.register(
      id,
      policy,
      'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
      hexlify(randomBytes(32)),
      piNode.libp2p.peerId.toMultihash().bytes,
      hexlify(randomBytes(32)),
    )
  ).wait()
  return { id, key }
}

/** A chain-path grant for `capsuleId`; resolves with the keyguard's verdict on it. */
async function grant(capsuleId: string): Promise<KeyguardEvent & { grantId: string }> {
  const kp = generateX25519KeyPair()
  ephemeral.set(hexlify(kp.publicKey), kp.privateKey)
  const { accessController } = connectDigicap(contracts, anvil.signers[2] as Wallet)
  const receipt = await (
    await accessController.requestAccess(
      capsuleId,
      hexlify(kp.publicKey),
      hexlify(randomBytes(32)),
      '0x',
    )
  ).wait()
  const log = receipt?.logs
    .map((l) => accessController.interface.parseLog(l))
    .find((p) => p?.name === 'AccessGranted')
  const grantId = String(log?.args[0]).toLowerCase()
  const deadline = Date.now() + 30_000
  for (;;) {
    const verdict = events.find((e) => 'grantId' in e && e.grantId === grantId)
    if (verdict !== undefined) return verdict as KeyguardEvent & { grantId: string }
    if (Date.now() > deadline) throw new Error(`no verdict on ${grantId} within 30 s`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const updater = (w: Wallet) => ethersPolicyUpdater(w, { contracts })
const policyOnChain = async (id: string) => (await chain.capsuleRecord(id)).policy

describe('moveCapsulePolicy', () => {
  it('recovers a capsule whose policy was moved on chain only: refused policy-mismatch before, released after', async () => {
    const c = await capsule(policies.old)
    expect((await grant(c.id)).type).toBe('released')
    // A raw updatePolicy (or a move a crash cut after its transaction): the record is behind.
    const { capsuleRegistry } = connectDigicap(contracts, owner)
    await (await capsuleRegistry.updatePolicy(c.id, policies.next)).wait()
    const before = await grant(c.id)
    expect(before).toMatchObject({
      type: 'grant-refused',
      reason: 'policy-mismatch',
      detail: 'other-policy',
    })
    expect(released.has(before.grantId)).toBe(false)

    const moved = await moveCapsulePolicy(
      { capsuleId: c.id, policy: policies.next },
      { updater: updater(owner), keyStore, chain },
    )
    // Finished from the chain: no transaction sent again.
    expect(moved).toEqual({
      capsuleId: c.id,
      previousPolicy: getAddress(policies.next),
      policy: getAddress(policies.next),
      recordUpdated: true,
    })
    expect((await keyStore.get(c.id))?.metadata.policy).toBe(getAddress(policies.next))
    const after = await grant(c.id)
    expect(after.type).toBe('released')
    expect(released.get(after.grantId)).toEqual(c.key)
  })

  it('moves a capsule on chain and in the record; a second run changes nothing', async () => {
    const c = await capsule(policies.old)
    const moved = await moveCapsulePolicy(
      { capsuleId: c.id, policy: policies.next, pollMs: 50 },
      { updater: updater(owner), keyStore, chain },
    )
    expect(moved).toMatchObject({
      previousPolicy: getAddress(policies.old),
      policy: getAddress(policies.next),
      recordUpdated: true,
    })
    expect(moved.transactionHash).toMatch(/^0x[0-9a-f]{64}$/)
    expect(await policyOnChain(c.id)).toBe(getAddress(policies.next))
    const after = await grant(c.id)
    expect(after.type).toBe('released')
    expect(released.get(after.grantId)).toEqual(c.key)
    const again = await moveCapsulePolicy(
      { capsuleId: c.id, policy: policies.next },
      { updater: updater(owner), keyStore, chain },
    )
    expect(again).toEqual({
      capsuleId: c.id,
      previousPolicy: getAddress(policies.next),
      policy: getAddress(policies.next),
      recordUpdated: false,
    })
  })

  it('a stranger changes neither the chain nor the record, and the owner’s grants still go out', async () => {
    const c = await capsule(policies.old)
    const record = await keyStore.get(c.id)
    // Its transaction reverts NotCapsuleOwner: the record is not written ahead of the chain.
    const err = await moveCapsulePolicy(
      { capsuleId: c.id, policy: policies.strangers },
      { updater: updater(stranger), keyStore, chain },
    ).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(decodeRevert(err)).toMatchObject({ errorName: 'NotCapsuleOwner' })
    expect(await keyStore.get(c.id)).toEqual(record)
    expect(await policyOnChain(c.id)).toBe(getAddress(policies.old))
    expect((await grant(c.id)).type).toBe('released')
  })

  it('a third policy on chain (an updatePolicy this owner did not ask for) is not adopted: unexpected-policy, nothing sent or written', async () => {
    const c = await capsule(policies.old)
    const record = await keyStore.get(c.id)
    // Whoever holds the owner key moved it elsewhere behind the owner's back.
    const { capsuleRegistry } = connectDigicap(contracts, owner)
    await (await capsuleRegistry.updatePolicy(c.id, policies.strangers)).wait()
    const sent: string[] = []
    const err = await moveCapsulePolicy(
      { capsuleId: c.id, policy: policies.next },
      {
        updater: {
          updatePolicy: async (id, p) => {
            sent.push(p)
            return updater(owner).updatePolicy(id, p)
          },
        },
        keyStore,
        chain,
      },
    ).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toMatchObject({
      code: 'POLICY_FOLLOW',
      details: { reason: 'unexpected-policy', policy: getAddress(policies.strangers) },
    })
    expect(sent).toEqual([])
    // The record still pins the old policy: the keyguard keeps refusing the capsule.
    expect(await keyStore.get(c.id)).toEqual(record)
    expect(await grant(c.id)).toMatchObject({ type: 'grant-refused', reason: 'policy-mismatch' })
  })

  it('a squatted capsule id (registered by a stranger under its policy) is refused, nothing sent or written', async () => {
    // The key record is the owner's; the chain's capsule is the stranger's (ADR 0071).
    const c = await capsule(policies.strangers, stranger)
    const record = await keyStore.get(c.id)
    let sent = 0
    const err = await moveCapsulePolicy(
      { capsuleId: c.id, policy: policies.next },
      {
        updater: {
          updatePolicy: (...args) => {
            sent++
            return updater(owner).updatePolicy(...args)
          },
        },
        keyStore,
        chain,
      },
    ).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(PolicyFollowError)
    expect(err).toMatchObject({
      code: 'POLICY_FOLLOW',
      details: { capsuleId: c.id, reason: 'not-owner', detail: 'other-owner' },
    })
    expect(sent).toBe(0)
    expect(await keyStore.get(c.id)).toEqual(record)
  })

  it('refuses malformed input with a TypeError before reading anything', async () => {
    const c = hexlify(randomBytes(32))
    await expect(
      moveCapsulePolicy(
        { capsuleId: c, policy: '0x1234' },
        { updater: updater(owner), keyStore, chain },
      ),
    ).rejects.toThrow(TypeError)
    await expect(
      moveCapsulePolicy(
        { capsuleId: '0x12', policy: policies.next },
        { updater: updater(owner), keyStore, chain },
      ),
    ).rejects.toThrow(TypeError)
    await expect(
      moveCapsulePolicy(
        { capsuleId: c, policy: policies.next },
        { updater: updater(owner), keyStore, chain },
      ),
    ).rejects.toMatchObject({ code: 'POLICY_FOLLOW', details: { reason: 'unknown-capsule' } })
  })
})
