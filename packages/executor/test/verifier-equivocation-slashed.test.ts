/**
 * An equivocating member ends slashed (ADR 0088, review 118): the verifier node hands the proof
 * its round caught to `AttestationHub.reportBeforeEquivocation`, once per member and job; the
 * first report convicts (reputation 0, `equivocationSlash` of the stake), the later ones are
 * refused `AlreadyConvicted` and cost nothing (simulated first).
 *
 * Real anvil with the settlement deployed, four stock verifier nodes on real libp2p, each
 * sending through `serialSigner` as `serve` does. One member other than the leader (its account
 * also runs a stock node) signs two conflicting prepares of the before round (view 0) and sends
 * them to the three others over its own node's PBFT streams. No executor answers: every member
 * judges the before phase `missed` after `watchMs` and the before round decides a fail. Each
 * member's first reveal is dropped on its way to the node (ADR 0096 amendment): it is sent again.
 * The same again, in a world of its own, with two conflicting observations (ADR 0092): the
 * leader's pre-prepare carries one of them to the equivocator's own node, which then holds its
 * own key's conflicting observation and must not report itself (ADR 0092 amendment, helper 139):
 * before, it committed and revealed too, and when its reveal landed first no honest member was
 * reported or paid (ci2341's failure).
 */
import { type DigicapSigner, privateKeySigner } from '@digicap/capsule-core'
import { beforeRoundId, pbftDomain, signVote } from '@digicap/committee'
import { connectSettlement, serialSigner } from '@digicap/contracts'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { encodePbftMessage, PBFT_PROTOCOL, sendMessage } from '@digicap/protocol'
import { getBytes, parseEther, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ethersVerifierChain,
  type VerifierEvent,
  type VerifierNode,
  verifierLine,
  verifierNode,
} from '../src/node/index.ts'
import {
  anvilWallets,
  mineEvery,
  openAttestedJob,
  setupWorld,
  type World,
} from './helpers/world.ts'

const STAKE = parseEther('0.01')

for (const phase of ['prepare', 'observation'] as const)
  describe(`a member that signs two ${phase}s in a round`, () => equivocationSuite(phase))

function equivocationSuite(phase: 'prepare' | 'observation'): void {
  let w: World
  let nodes: DigicapNode[] = []
  let wallets: Wallet[] = []
  let verifiers: VerifierNode[] = []
  let miner: ReturnType<typeof setInterval> | undefined
  /** Events by member. */
  const eventsOf: VerifierEvent[][] = [[], [], [], []]
  /** The members each node asked its chain to report. */
  const reportsOf: string[][] = [[], [], [], []]

  beforeAll(async () => {
    w = await setupWorld({
      fastPath: false,
      settlement: { seats: 4, sortitionWindow: 20, certificateBlocks: 600 },
    })
    wallets = anvilWallets(w, [4, 6, 7, 8])
    nodes = await Promise.all(wallets.map(() => createDigicapNode()))
    // Members reach each other by address (no discovery on loopback).
    for (const [i, node] of nodes.entries()) {
      for (const other of nodes.slice(i + 1)) {
        await node.libp2p.dial(other.libp2p.getMultiaddrs()[0]!)
      }
    }
    for (const [i, wallet] of wallets.entries()) {
      await (
        await w.c.nodeRegistry
          .connect(wallet)
          .register(
            (nodes[i] as DigicapNode).libp2p.peerId.toMultihash().bytes,
            `0x${'00'.repeat(32)}`,
            2,
            { value: STAKE },
          )
      ).wait()
    }
    const reveal = connectSettlement(
      w.addresses as never,
      w.other,
    ).attestationHub.interface.getFunction('revealBeforeEquivocation')?.selector as string
    verifiers = wallets.map((wallet, i) => {
      // As `serve` does: one nonce sequence per account. A bare Wallet gave a reveal sent while
      // the member's certificate was in flight the same nonce (`nonce has already been used`):
      // it fell back to the clear report and nobody was paid.
      const runner = serialSigner(wallet)
      if (phase === 'prepare') {
        // Fault injection: each member's first reveal is dropped on its way to the node (an RPC
        // error). Before, that member reported in the clear at once: convicted, nobody paid.
        const sendTransaction = runner.sendTransaction.bind(runner)
        let dropped = false
        runner.sendTransaction = async (tx) => {
          if (!dropped && String(tx.data).startsWith(reveal)) {
            dropped = true
            throw new Error('injected: the RPC dropped the reveal')
          }
          return sendTransaction(tx)
        }
      }
      const chain = ethersVerifierChain({
        addresses: w.addresses,
        settlement: w.addresses as never,
        runner,
      })
      const report = chain.reportEquivocation.bind(chain)
      chain.reportEquivocation = (jobId, round, committee, proof) => {
        reportsOf[i]?.push(proof.member)
        return report(jobId, round, committee, proof)
      }
      return verifierNode({
        pollMs: 200,
        openJobs: false,
        ticketWaves: false,
        settle: false,
        watchMs: 3000,
        challengeEveryMs: 500,
      })({
        libp2p: (nodes[i] as DigicapNode).libp2p,
        chain,
        signer: privateKeySigner(wallet.privateKey as `0x${string}`),
        vrfKey: getBytes(wallet.privateKey),
        onEvent: (e) => eventsOf[i]?.push(e),
      })
    })
    await Promise.all(verifiers.map((v) => v.start()))
    miner = mineEvery(w)
  }, 120_000)

  afterAll(async () => {
    if (miner !== undefined) clearInterval(miner)
    await Promise.allSettled(verifiers.map((v) => v.stop()))
    await Promise.allSettled(nodes.map((n) => n.stop()))
    await w?.stop()
  })

  it('is reported on chain by the members that caught it, once, and ends slashed', async () => {
    const { grantId, hub } = await openAttestedJob(w)

    // The equivocator: a member other than the leader, so that the leader's pre-prepare reaches
    // its node (the leader's own node would not see its key's second observation).
    let leader = ''
    await expect
      .poll(
        () => {
          const e = eventsOf.flat().find((x) => x.event === 'committee')
          leader = e?.event === 'committee' ? e.leader.toLowerCase() : ''
          return leader
        },
        { timeout: 60_000 },
      )
      .not.toBe('')
    const eq = [3, 2].find((i) => wallets[i]?.address.toLowerCase() !== leader) as number
    const honest = [0, 1, 2, 3].filter((i) => i !== eq)
    // The equivocator's two votes of `phase` in the before round, view 0, different values.
    const attacker = privateKeySigner(wallets[eq]?.privateKey as `0x${string}`) as DigicapSigner
    const domain = pbftDomain(BigInt(w.addresses.chainId), await hub.getAddress())
    const round = beforeRoundId(getBytes(grantId))
    const frames = await Promise.all(
      [1, 0].map(async (verdict) =>
        encodePbftMessage({
          vote: await signVote(attacker, domain, {
            phase,
            jobId: round,
            view: 0n,
            preparedView: 0n,
            verdict,
            evidenceHash: randomBytes(32),
          }),
          proof: [],
        }),
      ),
    )
    const caught = (i: number) =>
      (eventsOf[i] as VerifierEvent[]).filter((e) => e.event === 'equivocation')
    // Sent again until each honest member caught it: a session opens after its member is seated
    // (streams before that are cut unread); copies are dropped as such.
    const equivocator = (nodes[eq] as DigicapNode).libp2p
    await expect
      .poll(
        async () => {
          for (const i of honest) {
            if (caught(i).length > 0) continue
            try {
              const stream = await equivocator.dialProtocol(
                (nodes[i] as DigicapNode).libp2p.peerId,
                PBFT_PROTOCOL,
              )
              for (const frame of frames) await sendMessage(stream, frame)
              await stream.close()
            } catch {
              // Cut unread: that member's session is not open yet.
            }
          }
          return honest.every((i) => caught(i).length > 0)
        },
        { timeout: 90_000, interval: 500 },
      )
      .toBe(true)
    const member = wallets[eq]?.address as string
    for (const i of honest) {
      expect(caught(i)).toEqual([
        expect.objectContaining({ jobId: grantId, round: 'before', member }),
      ])
    }
    // One report convicted; the others were refused (AlreadyConvicted) before they were sent.
    const reported = honest.filter((i) => (caught(i)[0] as { reported: boolean }).reported).length
    // Each member's outcome in the message (ci2341 saw 0: the equivocator's own reveal won).
    const outcomes = [...honest, eq].map((i) => {
      const e = caught(i)[0] as { reported: boolean; error?: Error } | undefined
      return `${i}${i === eq ? ' (equivocator)' : ''}: ${e?.reported} ${e?.error?.message ?? ''}`
    })
    expect(reported, outcomes.join('; ')).toBe(1)
    // The equivocator's own node never reports itself: its reveal could win the race and take
    // the share of its own slash from the members that caught it (then none of them reported
    // true). When it holds its key's second observation it tells its operator instead.
    expect(reportsOf[eq], outcomes.join('; ')).toEqual([])
    const ownKey = expect.objectContaining({
      member,
      reported: false,
      error: expect.objectContaining({ code: 'VERIFIER_OWN_EQUIVOCATION' }),
    })
    if (phase === 'observation') {
      await expect.poll(() => caught(eq), { timeout: 30_000 }).toEqual([ownKey])
      // `serve` prints it so, not as a bare "equivocation".
      expect(verifierLine(caught(eq)[0] as VerifierEvent).text).toMatch(
        /equivocation of 0x[0-9a-fA-F]{40} in the before round: not reported \(This member's key signed a vote its node did not.*\)\. Stop every other process/,
      )
    } else {
      for (const e of caught(eq)) expect(e).toEqual(ownKey)
    }
    const slash = await hub.equivocationSlash()
    const node = await w.c.nodeRegistry.getNode(member)
    expect(node.reputation).toBe(0n)
    expect(node.stake).toBe(STAKE - slash)
    // The reporter was paid its share (ADR 0092), in the prepare world through a second send of
    // its reveal.
    const reporter = wallets[honest.find((i) => (caught(i)[0] as { reported: boolean }).reported)!]!
    expect(await w.c.nodeRegistry.payouts(reporter.address)).toBe(
      (slash * (await hub.reporterBps())) / 10_000n,
    )
  }, 180_000)
}
