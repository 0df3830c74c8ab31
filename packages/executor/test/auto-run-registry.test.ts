/**
 * Forged announcements do not reach the fetch (ADR 0090). Announcements are not signed: anyone
 * can announce any CID under any capsule id and owner. The auto-runner ran each one: the run
 * fetched the CID from whoever served it, and only the capsule's header, once fetched, was
 * checked against the registry; a peer serving that CID slowly held the run slot until the
 * fetch timeout (two minutes), and a forged announcement of a real CID made the true one a
 * duplicate. Now the registry is read first. A real anvil with the contracts and a registered
 * (and a revoked) capsule, the executor's real chain client; the run itself is the fault
 * injected: it never ends, as a fetch held by a slow peer.
 */

import {
  connectDigicap,
  createProvider,
  type DigicapAddresses,
  deployDigicap,
  environment,
} from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import type { CapsuleAnnouncement } from '@digicap/p2p'
import { hexlify, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type AutoRunEvent,
  autoRunner,
  ethersExecutorChain,
  type RunCapsuleResult,
} from '../src/index.ts'

const LIVE_CID = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'
const REVOKED_CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const OTHER_CID = 'bafkreidon73zkcrwdb5iafqtijxildoonbwnpv7dyd6ef3qdgads2jc4su'

let anvil: Anvil
let addresses: DigicapAddresses
let owner: Wallet
let executorWallet: Wallet
let live: string
let revoked: string

beforeAll(async () => {
  anvil = await startAnvil()
  const [deployer, o, exec] = anvil.signers as Wallet[]
  owner = o as Wallet
  executorWallet = exec as Wallet
  addresses = await deployDigicap(deployer as Wallet)
  const policy = await deployPolicy(owner, environment(hexlify(randomBytes(32))), {
    nodeRegistry: addresses.nodeRegistry,
  })
  const c = connectDigicap(addresses, owner)
  live = hexlify(randomBytes(32))
  revoked = hexlify(randomBytes(32))
  for (const [id, cid] of [
    [live, LIVE_CID],
    [revoked, REVOKED_CID],
  ] as const) {
    await (
      await c.capsuleRegistry.register(
        id,
        policy.address,
        cid,
        hexlify(randomBytes(32)),
        randomBytes(38),
        hexlify(randomBytes(32)),
      )
    ).wait()
  }
  await (await c.capsuleRegistry.revoke(revoked)).wait()
}, 120_000)

afterAll(async () => {
  await anvil?.stop()
})

const announcement = (over: Partial<CapsuleAnnouncement>): CapsuleAnnouncement => ({
  capsuleId: live,
  cid: LIVE_CID,
  owner: owner.address.toLowerCase(),
  registry: addresses.capsuleRegistry.toLowerCase(),
  chainId: 31337,
  keyguardPeer: '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN',
  ...over,
})

describe('the auto-runner reads the registry before it fetches', () => {
  it('forged announcements (unknown id, another CID, another owner, revoked) are ignored after one read; the true one runs', async () => {
    // a run that never ends: a fetch a slow peer holds until the fetch timeout
    const calls: string[] = []
    const executor = {
      runCapsule: (cid: string): Promise<RunCapsuleResult> => {
        calls.push(cid)
        return new Promise(() => {})
      },
    }
    const events: AutoRunEvent[] = []
    const chain = ethersExecutorChain({
      addresses,
      signer: executorWallet.connect(createProvider(anvil.rpcUrl, 31337n)),
    })
    const auto = autoRunner({
      chainId: 31337,
      registry: addresses.capsuleRegistry,
      onEvent: (e) => events.push(e),
    })({ node: {} as never, executor, chain })
    const forged = [
      announcement({ capsuleId: hexlify(randomBytes(32)), cid: OTHER_CID }),
      announcement({ cid: OTHER_CID }),
      // the true capsule id and CID under another owner: must not make the true one a duplicate
      announcement({ owner: executorWallet.address.toLowerCase() }),
      announcement({ capsuleId: revoked, cid: REVOKED_CID }),
    ]
    const queued = forged.map((ann, i) => auto.offer(ann, `attacker-${i}`))
    queued.push(auto.offer(announcement({}), 'owner'))
    const deadline = Date.now() + 10_000
    while (calls.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(calls).toEqual([LIVE_CID])
    expect(queued).toEqual([true, true, true, true, true])
    const unregistered = events.filter((e) => e.type === 'ignored' && e.reason === 'unregistered')
    expect(unregistered).toHaveLength(4)
    expect(events.filter((e) => e.type === 'failed')).toEqual([])
  }, 60_000)
})
