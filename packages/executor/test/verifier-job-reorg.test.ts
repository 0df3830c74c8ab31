/**
 * The verifier's job watch across a reorg (real anvil, `anvil_reorg`; real libp2p node).
 *
 * The verifier reads `JobOpened` up to the head it saw and moved on past it. A one-block reorg
 * that replaces the head it already read with a block holding a `JobOpened` hid that job from it
 * for good: it never drew a ticket, and a committee short of members lets the job time out (the
 * run unpaid, an `attested()` capsule's chain path held until its grant expires). Now each poll
 * reads the last `reorgBlocks` blocks again (a job is tracked once), so the job is found.
 *
 * The same window holds the grants whose jobs the verifier opens: a grant a reorg moved into a
 * block it had read was looked for only from its cursor on, so its job was never opened.
 */
import { privateKeySigner } from '@digicap/capsule-core'
import { attested, connectSettlement, createProvider } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { getBytes, hexlify, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ethersVerifierChain, type VerifierEvent, verifierNode } from '../src/node/index.ts'
import { makeCapsule, requestAttestedGrant, setupWorld, type World } from './helpers/world.ts'

let w: World
let node: DigicapNode

beforeAll(async () => {
  w = await setupWorld({
    fastPath: false,
    settlement: { seats: 4, sortitionWindow: 20, certificateBlocks: 600 },
  })
  node = await createDigicapNode()
}, 60_000)

afterAll(async () => {
  await node?.stop()
  await w?.stop()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('verifier job watch across a reorg', () => {
  it('finds a JobOpened that a reorg put into a block it had already read', async () => {
    const provider = w.anvil.provider
    const { grantId } = await requestAttestedGrant(w, {
      nonce: new Uint8Array(32).fill(3),
    })
    const { attestationHub: hub } = connectSettlement(w.addresses as never, w.other)
    const open = await hub.connect(w.other).openJob.populateTransaction(grantId)
    const signedOpen = await (w.other as Wallet).signTransaction(
      await (w.other as Wallet).populateTransaction({ ...open, gasLimit: 2_000_000 }),
    )

    const wallet = (w.anvil.signers[7] as Wallet).connect(
      createProvider(w.anvil.rpcUrl, BigInt(w.addresses.chainId)),
    )
    const events: VerifierEvent[] = []
    const verifier = verifierNode({
      pollMs: 100,
      openJobs: false,
      ticketWaves: false,
      settle: false,
    })({
      libp2p: node.libp2p,
      chain: ethersVerifierChain({
        addresses: w.addresses,
        settlement: w.addresses as never,
        runner: wallet,
      }),
      signer: privateKeySigner(wallet.privateKey as `0x${string}`),
      vrfKey: getBytes(wallet.privateKey),
      onEvent: (e) => events.push(e),
    })
    await verifier.start()
    try {
      // A block the verifier reads (no job in it) ...
      await provider.send('evm_mine', [])
      await sleep(600)
      // ... replaced by one holding the job's opening.
      await provider.send('anvil_reorg', [1, [[signedOpen, 0]]])
      expect((await hub.jobs(grantId)).status).toBe(1n)
      await provider.send('evm_mine', [])
      const deadline = Date.now() + 5000
      while (Date.now() < deadline && !events.some((e) => e.event === 'job-opened')) await sleep(50)
      expect(events.find((e) => e.event === 'job-opened')).toMatchObject({
        event: 'job-opened',
        jobId: grantId.toLowerCase(),
      })
    } finally {
      await verifier.stop()
    }
  }, 60_000)

  it('opens the job of a grant that a reorg put into a block it had already read', async () => {
    const provider = w.anvil.provider
    const policy = await deployPolicy(w.owner, attested(), {
      nodeRegistry: w.addresses.nodeRegistry,
    })
    const capsule = await makeCapsule(w, {
      plaintext: new TextEncoder().encode('grant'),
      runtime: { kind: 'data' },
      policy: policy.address,
    })
    const ac = w.c.accessController.connect(w.executorWallet)
    const request = await ac.requestAccess.populateTransaction(
      capsule.capsuleId,
      hexlify(new Uint8Array(32).fill(4)),
      hexlify(w.measurement),
      '0x',
    )
    const executor = w.executorWallet as Wallet
    const signedRequest = await executor.signTransaction(
      await executor.populateTransaction({ ...request, gasLimit: 2_000_000 }),
    )

    const wallet = (w.anvil.signers[8] as Wallet).connect(
      createProvider(w.anvil.rpcUrl, BigInt(w.addresses.chainId)),
    )
    const real = ethersVerifierChain({
      addresses: w.addresses,
      settlement: w.addresses as never,
      runner: wallet,
    })
    // The blocks the verifier has read `JobOpened` up to: a poll's end, awaited below.
    let readTo = -1
    const chain = {
      ...real,
      openedJobs: async (from: number, to: number) => {
        const jobs = await real.openedJobs(from, to)
        readTo = Math.max(readTo, to)
        return jobs
      },
    }
    const events: VerifierEvent[] = []
    const verifier = verifierNode({ pollMs: 100, ticketWaves: false, settle: false })({
      libp2p: node.libp2p,
      chain,
      signer: privateKeySigner(wallet.privateKey as `0x${string}`),
      vrfKey: getBytes(wallet.privateKey),
      onEvent: (e) => events.push(e),
    })
    await verifier.start()
    try {
      // A block the verifier reads (no grant in it) ...
      await provider.send('evm_mine', [])
      const read = await provider.getBlockNumber()
      while (readTo < read) await sleep(50)
      // ... replaced by one holding the grant.
      await provider.send('anvil_reorg', [1, [[signedRequest, 0]]])
      const [log] = await w.c.accessController.queryFilter(
        w.c.accessController.filters.AccessGranted!(),
        read,
        read,
      )
      expect(log).toBeDefined()
      const grantId = (log as unknown as { args: { grantId: string } }).args.grantId.toLowerCase()
      const deadline = Date.now() + 20_000
      while (Date.now() < deadline && !events.some((e) => e.event === 'job-opened')) await sleep(50)
      expect(events.find((e) => e.event === 'job-opened')).toMatchObject({
        event: 'job-opened',
        jobId: grantId,
      })
      const { attestationHub: hub } = connectSettlement(w.addresses as never, w.other)
      expect((await hub.jobs(grantId)).status).toBeGreaterThan(0n)
    } finally {
      await verifier.stop()
    }
  }, 60_000)
})
