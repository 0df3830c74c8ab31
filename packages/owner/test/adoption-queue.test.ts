/**
 * Forged announcements do not make the Pi scan the chain back to back (ADR 0090). Anyone can
 * publish an announcement that names this keyguard's peer id and owner (both public), and each
 * one heard asked for an adoption pass: a scan of the registry's logs from the start block (one
 * `eth_getLogs` per 10 000 blocks: hundreds on a public chain with no start block set) and a
 * `getCapsule` per capsule. Passes ran one at a time, but back to back for as long as the flood
 * lasted. A real anvil with the contracts, real libp2p + gossipsub nodes on loopback (the flood
 * comes through the topic as `pi-node serve` hears it), a software sealer and a real key store.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createProvider, type DigicapAddresses, deployDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import {
  type CapsuleDirectory,
  createKeyStore,
  type KeyStore,
  type Logger,
  softwareSealer,
} from '@digicap/keyguard'
import {
  CAPSULE_TOPIC,
  createDigicapNode,
  type DigicapNode,
  encodeCapsuleAnnouncement,
  heliaCapsuleStore,
  subscribeCapsuleAnnouncements,
} from '@digicap/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import type { JsonRpcProvider, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type AdoptionQueue,
  adoptionQueue,
  ethersCapsuleDirectory,
  ipfsHeaderFetcher,
} from '../src/index.ts'

let anvil: Anvil
let provider: JsonRpcProvider
let contracts: DigicapAddresses
let dir: string
let keyStore: KeyStore
let pi: DigicapNode
let attacker: DigicapNode
const quiet: Logger = { info: () => {}, warn: () => {} }
/** Announcements the Pi heard; each one it wants asks `onWanted` (as `pi-node serve` does). */
let heard = 0
let queue: AdoptionQueue | undefined

beforeAll(async () => {
  anvil = await startAnvil()
  provider = createProvider(anvil.rpcUrl, Number(anvil.chainId))
  contracts = await deployDigicap(anvil.signers[0] as Wallet)
  dir = await mkdtemp(join(tmpdir(), 'owner-adoption-queue-'))
  keyStore = await createKeyStore(join(dir, 'keys'))
  ;[pi, attacker] = await Promise.all([createDigicapNode(), createDigicapNode()])
  subscribeCapsuleAnnouncements(pi, (ann) => {
    heard++
    if (queue?.wants(ann)) void queue.run()
  })
  await attacker.libp2p.dial(multiaddr(pi.multiaddrs()[0] as string))
}, 60_000)

afterAll(async () => {
  await Promise.all([pi?.stop(), attacker?.stop()])
  provider?.destroy()
  await anvil?.stop()
  await rm(dir, { recursive: true, force: true })
})

const owner = () => anvil.accounts[1] as string

/** The Pi's adoption queue over the real chain directory, counting the chain scans. */
function piQueue(init: { passSpacingMs?: number; passBurst?: number } = {}) {
  const real = ethersCapsuleDirectory(provider, contracts, { fromBlock: contracts.deployBlock })
  let scans = 0
  const directory: CapsuleDirectory = {
    ownedCapsules: (who) => {
      scans++
      return real.ownedCapsules(who)
    },
  }
  const made = adoptionQueue(
    { owner: owner() as `0x${string}`, peerId: pi.peerId, chainId: Number(anvil.chainId) },
    {
      sealer: softwareSealer({
        keyFile: join(dir, `sealer-${randomBytes(4).toString('hex')}.pem`),
        allowInsecure: true,
        createIfMissing: true,
        logger: quiet,
      }),
      keyStore,
      directory,
      fetcher: ipfsHeaderFetcher(heliaCapsuleStore(pi.helia)),
    },
    quiet,
    init,
  )
  return { queue: made, scans: () => scans }
}

/** `count` announcements naming the Pi and its owner, published by the attacker 10 ms apart. */
async function flood(count: number): Promise<void> {
  const pubsub = attacker.libp2p.services.pubsub
  if (!pubsub) throw new Error('the node runs gossipsub by default')
  const deadline = Date.now() + 5_000
  while (pubsub.getSubscribers(CAPSULE_TOPIC).length === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50))
  }
  const before = heard
  for (let i = 0; i < count; i++) {
    const forged = encodeCapsuleAnnouncement({
      capsuleId: `0x${randomBytes(32).toString('hex')}`,
      cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
      owner: owner(),
      registry: contracts.capsuleRegistry,
      chainId: Number(anvil.chainId),
      keyguardPeer: pi.peerId,
    })
    await pubsub.publish(CAPSULE_TOPIC, forged)
    await new Promise((r) => setTimeout(r, 10))
  }
  while (heard - before < count && Date.now() < deadline + 10_000) {
    await new Promise((r) => setTimeout(r, 20))
  }
  expect(heard - before).toBe(count)
}

describe('a flood of forged announcements for this keyguard', () => {
  it('costs the burst of passes, then one chain scan per pass spacing, not one after another', async () => {
    const { queue: q, scans } = piQueue()
    queue = q
    try {
      await flood(80)
      await new Promise((r) => setTimeout(r, 300))
      // the burst (3 passes, one at a time); the rest wait for the spacing (30 s) as one more pass
      expect(scans()).toBe(3)
    } finally {
      q.stop()
      await q.settled()
    }
  }, 60_000)

  it('one more pass still comes once the spacing is up, and a stopped queue starts none', async () => {
    const { queue: q, scans } = piQueue({ passSpacingMs: 1_000, passBurst: 1 })
    queue = q
    try {
      const started = Date.now()
      await flood(20)
      // what was heard after the first pass started is adopted by the next one
      while (scans() < 2 && Date.now() - started < 10_000) {
        await new Promise((r) => setTimeout(r, 20))
      }
      expect(scans()).toBe(2)
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000)
      void q.run()
      q.stop()
      await new Promise((r) => setTimeout(r, 1_500))
      expect(scans()).toBe(2)
    } finally {
      q.stop()
      await q.settled()
    }
  }, 60_000)

  it('a pass spacing or burst that is not a whole number is refused (INVALID_ARGUMENT)', () => {
    for (const init of [{ passSpacingMs: -1 }, { passSpacingMs: 0.5 }, { passBurst: 0 }]) {
      expect(() => piQueue(init)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    }
  })
})
