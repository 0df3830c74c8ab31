/**
 * The verifier role (DESIGN flow 6–7, issue #16): a node that watches AttestationHub for opened
 * jobs and, for each, proves its VRF ticket for seed = H(job id ‖ blockhash at grant), submits it,
 * and — when the closed window seated it — finds the other members (their registered peer ids),
 * challenges the executor before / during / after the run (watch-run.ts), agrees with the
 * committee by PBFT over libp2p (pbft-round.ts) twice: on the before phase (the before round,
 * `submitBeforeCertificate`, which a keyguard waits for on the chain path, ADR 0033) and on the
 * whole run (`submitCertificate`); then settles the job. A before fail certifies the job as failed.
 *
 * Only a member that submits a certificate builds it (ADR 0053, `certificate: 'on-request'`): the
 * deciding view's leader at once, then, while the chain still lacks it, the next members in the
 * view's leader order, one every `backupMs` (a leader that died before submitting is replaced).
 * The others decide on the counted commits and check no signature.
 *
 * A job's failure stays with the job (a `job-failed` event with a typed error); the node goes on.
 */
import { setTimeout as wait } from 'node:timers/promises'
import { createActivationCache } from '@digicap/attestation'
import { hexToBytes, toHex } from '@digicap/capsule-core'
import {
  BEFORE_FAIL,
  BEFORE_PASS,
  beforeCertificateCall,
  beforeRoundId,
  certificateCall,
  cutoffHistory,
  drawTicket,
  type EquivocationProof,
  hubCommittee,
  type PbftCertificate,
  type PbftDecision,
  pbftCommittee,
  pbftDomain,
  signAttestChallenge,
  signedVotesOfJob,
  type TicketPlan,
  waitForWave,
} from '@digicap/committee'
import { peerIdFromRegistered } from '@digicap/keyguard'
import { attestForwardProtocol, handle, request } from '@digicap/protocol'
import { onchainProof } from '@digicap/vrf'
import { peerIdFromString } from '@libp2p/peer-id'
import { challengeCounter } from './challenge-counter.ts'
import { type ForwardRefusedError, OwnEquivocationError, VerifierJobError } from './errors.ts'
import { type JobForwards, jobForwards } from './forwarding.ts'
import { pbftRounds, UNREACHABLE_PEER } from './pbft-round.ts'
import { closeEndedJobs } from './signed-votes-jobs.ts'
import type {
  OpenedJob,
  VerifierEvent,
  VerifierNode,
  VerifierNodeComponents,
  VerifierNodeInit,
} from './types.ts'
import { evidenceHash, verdictBits } from './verdict.ts'
import { watchRun } from './watch-run.ts'

/**
 * A seated member's peer id for the PBFT committee: its registered peer id, or — when those bytes
 * do not decode — a placeholder no peer can have, so the member counts but is never reached.
 */
export function committeePeer(address: string, registered: Uint8Array): string {
  try {
    return peerIdFromRegistered(registered).toString()
  } catch {
    return `${UNREACHABLE_PEER}${address.toLowerCase()}`
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const hex = (id: Uint8Array | string) => (typeof id === 'string' ? id.toLowerCase() : toHex(id))
/** Ended jobs whose rounds wait for the chain to say settled or timed out (ADR 0093), at most. */
const MAX_UNCLOSED = 1024

/**
 * @example
 * ```ts
 * const verifier = verifierNode({ pollMs: 500 })({ libp2p, chain: ethersVerifierChain(…), signer, vrfKey })
 * await verifier.start()
 * ```
 */
export function verifierNode(
  init: VerifierNodeInit = {},
): (components: VerifierNodeComponents) => VerifierNode {
  const pollMs = init.pollMs ?? 500
  const watchMs = init.watchMs ?? 120_000
  const everyMs = init.challengeEveryMs ?? 500
  const viewTimeoutMs = init.viewTimeoutMs ?? 2000
  const decideMs = init.decideMs ?? 60_000
  const backupMs = init.backupMs ?? 3000
  return (c) => {
    const { chain } = c
    const self = c.signer.address
    const rounds = pbftRounds(c.libp2p, init.maxJobs === undefined ? {} : { maxJobs: init.maxJobs })
    const activations = createActivationCache()
    const history = cutoffHistory(chain)
    const certificates = new Map<string, PbftCertificate>()
    const jobs = new Map<string, Promise<VerifierEvent>>()
    /** Jobs that ended here while still open or certified on chain: their rounds wait to close. */
    const unclosed = new Map<string, Uint8Array>()
    const waiters = new Map<string, (e: VerifierEvent) => void>()
    const stopping = new AbortController()
    let loop: Promise<void> | undefined
    let next = 0
    /** The first block watched: re-reads after a reorg never go below it. */
    let first = 0
    const reorgBlocks = Math.max(1, init.reorgBlocks ?? 12)
    /** Grants whose job this node tried to open: the block hash and number they were seen in. */
    const tried = new Map<string, { hash: string; block: number }>()
    let certified = 0
    /** This node's watched jobs' forwarded answers (ADR 0095), by job id (hex). */
    const forwards = new Map<string, JobForwards>()
    let unhandleForwards: (() => Promise<void>) | undefined
    const forwardingOn =
      init.forwarding !== false && chain.head !== undefined && chain.blockOf !== undefined
    const forwardWaitMs = init.forwardWaitMs ?? 3000
    /** The head, read at most once per `pollMs` (every challenge names a recent block). */
    let head: { at: number; read: Promise<{ number: number; hash: Uint8Array }> } | undefined
    const recentBlock = () => {
      if (head === undefined || performance.now() - head.at > Math.min(pollMs, 1000)) {
        const read = (chain.head as NonNullable<typeof chain.head>)()
        head = { at: performance.now(), read }
        read.catch(() => {
          if (head?.read === read) head = undefined
        })
      }
      return head.read
    }

    const emit = (e: VerifierEvent) => {
      try {
        c.onEvent?.(e)
      } catch {
        // A reporting bug does not stop a job.
      }
    }
    const live = () => {
      if (stopping.signal.aborted) throw new VerifierJobError('stopped', 'The verifier stopped')
    }
    /**
     * Resolves once the head is past `block`. A failed read of the head is read again, up to 40
     * times in a row (~10 s at most), then thrown.
     */
    async function untilBlock(block: number): Promise<void> {
      for (let failed = 0; ; ) {
        const head = await chain.blockNumber().then(
          (h) => {
            failed = 0
            return h
          },
          (err: unknown) => {
            if (++failed > 40) throw err
            return undefined
          },
        )
        if (head !== undefined && head > block) return
        live()
        await sleep(Math.min(pollMs, 250))
      }
    }
    /**
     * Waits for a round (`decide` or `certify`, given the signal that ends the wait) only while the
     * chain still needs its certificate, looking every `pollMs` (ADR 0056): resolves with the
     * round's result, or with `undefined` once `pending()` says the certificate landed (another
     * member's: a member that missed the round's votes cannot learn the decision from members that
     * are done with it, and need not). Throws `stopped` as soon as the node stops.
     */
    async function whilePending<T>(
      work: (leave: AbortSignal) => Promise<T>,
      pending: () => Promise<boolean>,
    ): Promise<T | undefined> {
      const leave = new AbortController()
      const onStop = () => leave.abort()
      stopping.signal.addEventListener('abort', onStop, { once: true })
      // Stopped already (while watching the run): a listener added now never fires.
      if (stopping.signal.aborted) leave.abort()
      let landed = false
      const watching = (async () => {
        while (!leave.signal.aborted) {
          await wait(pollMs, undefined, { signal: leave.signal }).catch(() => {})
          if (leave.signal.aborted) return
          if (!(await pending().catch(() => true))) {
            landed = true
            leave.abort()
          }
        }
      })()
      try {
        return await work(leave.signal)
      } catch (err) {
        if (landed) return undefined
        live()
        throw err
      } finally {
        leave.abort()
        stopping.signal.removeEventListener('abort', onStop)
        await watching
      }
    }

    async function runJob(job: OpenedJob): Promise<VerifierEvent> {
      const jobId = hex(job.jobId)
      /** @throws {VerifierJobError} `expired` when the job timed out on chain uncertified. */
      const notExpired = async (round: 'before' | 'final') => {
        const status = await chain.status(job.jobId)
        if (status === 'timed-out') {
          throw new VerifierJobError('expired', 'The job timed out on chain uncertified', {
            details: { round, status },
          })
        }
      }
      emit({ event: 'job-opened', jobId, executor: job.executor })
      // The seed needs the grant block's hash: readable from the next block on.
      let sortition: Awaited<ReturnType<typeof chain.sortition>> | undefined
      for (let i = 0; sortition === undefined; i++) {
        live()
        try {
          sortition = await chain.sortition(job.jobId)
        } catch (err) {
          if (i > 100) throw err
          await sleep(Math.min(pollMs, 250))
        }
      }
      const ticket = drawTicket(c.vrfKey, sortition.seed)
      history.watch(job.jobId, sortition.lastBlock)
      // Restarted after its ticket landed (ADR 0093): it takes its seat again instead of sending
      // a ticket the closed window refuses. Only with a signed-vote record: without one it could
      // sign another vote for a slot it signed before the restart.
      const seatedBefore =
        c.signedVotes !== undefined &&
        ((await chain.seats(job.jobId).catch(() => undefined))?.members.includes(self) ?? false)
      if (!seatedBefore && init.ticketWaves !== false) {
        const plan: TicketPlan = await waitForWave({
          chain,
          self,
          jobId: job.jobId,
          beta: ticket.beta,
          grantBlock: sortition.grantBlock,
          lastBlock: sortition.lastBlock,
          history,
          untilBlock,
        }).catch((err: unknown) => {
          // Only a stop ends the job here (`untilBlock` reads the head again on a failure).
          if (stopping.signal.aborted) throw err
          return { send: true, wave: 0, because: 'unread' }
        })
        if (!plan.send) {
          // Seats only get better: this ticket could not be seated, so it is not sent (ADR 0065).
          const done: VerifierEvent = {
            event: 'not-selected',
            jobId,
            reason: `outranked before sending (wave ${plan.wave})`,
          }
          emit(done)
          return done
        }
      }
      try {
        if (!seatedBefore) {
          await chain.submitTicket(
            job.jobId,
            onchainProof(ticket.publicKey, sortition.seed, ticket.proof),
          )
        }
      } catch (cause) {
        // Not eligible, or the window closed before this node saw the job.
        const reason = cause instanceof Error ? cause.message.slice(0, 200) : String(cause)
        const done: VerifierEvent = { event: 'not-selected', jobId, reason }
        emit(done)
        return done
      }
      await untilBlock(sortition.lastBlock)
      const seats = await chain.seats(job.jobId)
      emit({ event: 'ticket', jobId, seated: seats.members.includes(self) })
      if (!seats.members.includes(self)) {
        const done: VerifierEvent = { event: 'not-selected', jobId, reason: 'outranked' }
        emit(done)
        return done
      }
      await chain.seatCommittee(job.jobId)
      for (let i = 0; (await chain.status(job.jobId)) === 'open'; i++) {
        live()
        if (i > 200) throw new VerifierJobError('seating', 'The committee was not seated')
        await sleep(Math.min(pollMs, 250))
      }
      // Certified, settled or timed out already (a member restarted from an old block takes its
      // seat again, ADR 0093): nothing is left to sign. Its round would still start and sign an
      // observation before it noticed, and once the record has dropped those slots (closed, then
      // forgotten past `maxClosed`, or a new record) that could be another vote for a slot it
      // signed: slashable, since the hub convicts on any job (review 135).
      const standing = await chain.status(job.jobId)
      if (standing !== 'seated') {
        await notExpired('final')
        if (init.settle !== false) await chain.settle(job.jobId, hubCommittee(seats.members))
        const done: VerifierEvent = { event: 'settled', jobId }
        emit(done)
        return done
      }
      // Leader order = ascending VRF score (CommitteeSortition's seats); peers from NodeRegistry.
      // Each member on its own: one whose registered peer id does not decode (the registry checks
      // only its length, and a seated member may change it) is a silent member, not a failed job.
      const members = await Promise.all(
        seats.members.map(async (address) => ({
          address,
          peerId: committeePeer(address, (await chain.node(address)).peerId),
        })),
      )
      const committee = pbftCommittee(members)
      emit({ event: 'committee', jobId, members: seats.members, leader: seats.members[0]! })
      const beforeId = beforeRoundId(job.jobId)
      const sorted = hubCommittee(seats.members)
      /** Members reported for this job: the hub convicts once per member and job. */
      const accused = new Set<string>()
      const reports: Promise<void>[] = []
      const report = (proof: EquivocationProof, roundId: Uint8Array) => {
        const member = proof.member.toLowerCase()
        if (accused.has(member)) return
        accused.add(member)
        const name = hex(roundId) === hex(beforeId) ? 'before' : 'final'
        const told = (reported: boolean, error?: Error) =>
          emit({
            event: 'equivocation',
            jobId,
            round: name,
            member: proof.member,
            reported,
            ...(error === undefined ? {} : { error }),
          })
        if (member === self.toLowerCase()) {
          // Its own key's second vote (a second process holds it). Reporting itself races the
          // members that caught it for the share of its own slash: when its reveal lands first it
          // takes the share and none of them is paid (ADR 0092 amendment). The operator is told.
          told(
            false,
            new OwnEquivocationError({
              details: { round: name, phase: proof.a.phase, view: proof.a.view },
            }),
          )
          return
        }
        reports.push(
          chain.reportEquivocation(job.jobId, name, sorted, proof).then(
            (reported) => told(reported),
            (err: unknown) => told(false, err instanceof Error ? err : new Error(String(err))),
          ),
        )
      }
      const round = await rounds.open({
        onEquivocation: report,
        committee,
        domain: pbftDomain(chain.chainId, chain.hub),
        roundIds: [beforeId, job.jobId],
        signer: c.signer,
        ...(c.signedVotes === undefined
          ? {}
          : { signedVotes: signedVotesOfJob(c.signedVotes, job.jobId) }),
        viewTimeoutMs,
        signal: stopping.signal,
      })
      const at = committee.members.findIndex((m) => m.address.toLowerCase() === self.toLowerCase())
      /**
       * Certifies and submits a decided round when this member's turn comes and the chain still
       * needs it: the deciding view's leader at once, the next in leader order after `backupMs`,
       * and so on. Resolves with the certificate when this member built it.
       */
      const submit = async (
        decision: PbftDecision,
        roundId: Uint8Array,
        name: 'before' | 'final',
        send: (certificate: PbftCertificate) => Promise<void>,
        pending: () => Promise<boolean>,
      ): Promise<PbftCertificate | undefined> => {
        const n = committee.members.length
        const turn = (at - Number(decision.view % BigInt(n)) + n) % n
        if (init.submit !== 'any' && turn > 0) {
          // Waits for its turn, looking at the chain every `pollMs`: once the certificate landed
          // there is nothing left to wait for (a member whose turn never comes finishes its job
          // then, not (n − 1) × backupMs later). A stopping node does not wait its turn out.
          const due = performance.now() + backupMs * turn
          for (let left = backupMs * turn; left > 0; left = due - performance.now()) {
            await wait(Math.min(pollMs, left), undefined, { signal: stopping.signal }).catch(
              () => {},
            )
            if (stopping.signal.aborted) break
            if (!(await pending().catch(() => true))) break
          }
          live()
        }
        const needed = await pending()
        const certificate = needed
          ? await whilePending((leave) => round.certify(roundId, decideMs, leave), pending)
          : undefined
        if (certificate !== undefined) await send(certificate)
        // Submitted: this member built one and the chain no longer needs it, because it holds a
        // certificate, not because the job timed out meanwhile (then nothing landed).
        const submitted =
          certificate !== undefined &&
          !(await pending()) &&
          (await chain.status(job.jobId)) !== 'timed-out'
        emit({
          event: 'certificate',
          jobId,
          round: name,
          submitted,
          ...(certificate === undefined ? {} : { signers: certificate.signers }),
        })
        return certificate
      }
      const decided = (decision: PbftDecision, name: 'before' | 'final') => {
        emit({
          event: 'decided',
          jobId,
          round: name,
          verdict: decision.verdict,
          view: decision.view,
          messages: { sent: round.transport.stats.sent, received: round.transport.stats.received },
        })
      }
      /**
       * A round this member left undecided: the chain no longer needs it. Another member's
       * certificate landed, or the job timed out on chain (`expired`: nothing will land now).
       */
      const landedWithout = async (name: 'before' | 'final') => {
        await notExpired(name)
        emit({ event: 'certificate', jobId, round: name, submitted: false })
      }
      let beforePassed = false
      let forwarded: () => Promise<void> = async () => {}
      let beforeSubmitted: Promise<PbftCertificate | undefined> = Promise.resolve(undefined)
      try {
        const grant = await chain.grant(job.jobId, stopping.signal)
        const executor = await chain.node(grant.executor)
        if (executor.attestationKeyHash.every((b) => b === 0)) {
          throw new VerifierJobError(
            'executor-unregistered',
            'The executor has no attestation key',
            {
              details: { executor: grant.executor },
            },
          )
        }
        const statement = (id: Uint8Array, verdict: number) => ({
          verdict,
          evidenceHash: evidenceHash({
            jobId: id,
            recordHash: executor.attestationKeyHash,
            grant,
            verdict,
          }),
        })
        const domain = pbftDomain(chain.chainId, chain.hub)
        // random start: a member restarted within one block never signs a challenge twice
        const nextSeq = challengeCounter()
        const sends = new Set<Promise<void>>()
        const peers = committee.members
          .filter((m) => m.address.toLowerCase() !== self.toLowerCase())
          .map((m) => m.peerId)
          .filter((id) => !id.startsWith(UNREACHABLE_PEER))
        /** A forwarded answer not counted, by the inbox or the watch: one event (ADR 0095). */
        const forwardRefused = (err: ForwardRefusedError) =>
          emit({
            event: 'forward-refused',
            jobId,
            reason: err.reason,
            details: err.details as Record<string, unknown>,
          })
        const inbox = forwardingOn
          ? jobForwards({
              jobId: job.jobId,
              committee,
              domain,
              fromBlock: sortition.lastBlock,
              blockOf: (hash) => (chain.blockOf as NonNullable<typeof chain.blockOf>)(hash),
              onRefused: forwardRefused,
            })
          : undefined
        if (inbox !== undefined) forwards.set(jobId, inbox)
        let beforeSeen!: (verdict: string) => void
        const beforePhase = new Promise<string>((resolve) => {
          beforeSeen = resolve
        })
        const watching = watchRun({
          libp2p: c.libp2p,
          peer: peerIdFromRegistered(executor.peerId),
          jobId: job.jobId,
          grant,
          registeredHash: executor.attestationKeyHash,
          record: c.records?.(grant.executor),
          activations,
          ekRoots: init.ekRoots,
          watchMs,
          everyMs,
          signal: stopping.signal,
          onPhase: (phase) => {
            emit({ event: 'phase', jobId, phase })
            if (phase.phase === 'before') beforeSeen(phase.verdict)
          },
          ...(inbox === undefined
            ? {}
            : {
                forwarding: {
                  challenge: async () =>
                    signAttestChallenge(c.signer, domain, {
                      jobId: job.jobId,
                      blockHash: (await recentBlock()).hash,
                      seq: nextSeq(),
                    }),
                  // Pushed to every other member at once: the ones the executor withheld the phase
                  // from cannot be told apart (one message per member and phase).
                  verified: (phase, signed, evidence) => {
                    const message = {
                      jobId: job.jobId,
                      blockHash: signed.blockHash,
                      seq: signed.seq,
                      challengeSignature: signed.signature,
                      phase,
                      evidence,
                    }
                    for (const peer of peers) {
                      const send = (async () => {
                        for (let attempt = 0; attempt < 8 && !stopping.signal.aborted; attempt++) {
                          try {
                            const { status } = await request(
                              c.libp2p,
                              peerIdFromString(peer),
                              attestForwardProtocol,
                              message,
                              { timeout: 5000, signal: stopping.signal },
                            )
                            // Not watching yet, or its RPC is behind ours: again shortly.
                            if (status !== 'unknown-job' && status !== 'unknown-block') return
                          } catch {
                            // unreachable for now
                          }
                          await sleep(500)
                        }
                      })()
                      sends.add(send)
                      void send.finally(() => sends.delete(send))
                    }
                  },
                  answers: (phase) => inbox.answers(phase),
                  onRefused: forwardRefused,
                  waitMs: forwardWaitMs,
                },
              }),
        })
        // Answers to forward go on while the rounds run; the job's end waits for them.
        forwarded = () => Promise.allSettled([...sends]).then(() => {})
        // The before round (ADR 0033): on the chain path the keyguard releases the key only once
        // its pass is on chain, so it runs while the watch goes on.
        beforePassed = (await beforePhase) === 'verified'
        const beforePending = async () =>
          (await chain.status(job.jobId)) === 'seated' &&
          (await chain.beforeVerdict(job.jobId)) === 'none'
        const beforeDecision = await whilePending(
          (leave) =>
            round.decide(
              beforeId,
              statement(beforeId, beforePassed ? BEFORE_PASS : BEFORE_FAIL),
              decideMs,
              leave,
              (v) => statement(beforeId, v).evidenceHash,
            ),
          beforePending,
        )
        if (beforeDecision === undefined) {
          // Decided and certified without this member: the chain holds the before verdict.
          await landedWithout('before')
          beforePassed = (await chain.beforeVerdict(job.jobId)) === 'pass'
        } else {
          decided(beforeDecision, 'before')
          beforePassed = beforeDecision.verdict === BEFORE_PASS
          beforeSubmitted = submit(
            beforeDecision,
            beforeId,
            'before',
            (certificate) =>
              chain.submitBeforeCertificate(beforeCertificateCall(job.jobId, certificate, sorted)),
            beforePending,
          )
          // Awaited later (after the final round, or 200 ms on): a stop meanwhile rejects it first,
          // which must not be an unhandled rejection of the process.
          beforeSubmitted.catch(() => {})
        }
        if (beforePassed) {
          const watched = await watching
          const verdict = verdictBits(watched.phases)
          const finalPending = async () => (await chain.status(job.jobId)) === 'seated'
          const decision = await whilePending(
            (leave) =>
              round.decide(
                job.jobId,
                statement(job.jobId, verdict),
                decideMs,
                leave,
                (v) => statement(job.jobId, v).evidenceHash,
              ),
            finalPending,
          )
          if (decision === undefined) {
            await landedWithout('final')
          } else {
            decided(decision, 'final')
            // Let the last commits reach the others before the handler goes.
            await sleep(200)
            await beforeSubmitted
            const certificate = await submit(
              decision,
              job.jobId,
              'final',
              (c) => chain.submitCertificate(certificateCall(c, sorted)),
              finalPending,
            )
            if (certificate !== undefined) certificates.set(jobId, certificate)
          }
        } else {
          // A before fail certifies the job as failed: nothing more to agree on.
          await sleep(200)
          const certificate = await beforeSubmitted
          if (certificate !== undefined) certificates.set(jobId, certificate)
        }
      } finally {
        await forwarded()
        forwards.delete(jobId)
        certified += round.certified
        await round.stop()
        await beforeSubmitted.catch(() => {})
        // Reports go on chain before the job ends (each ends in an event, never throws).
        await Promise.all(reports)
      }
      if (init.settle !== false) {
        for (let i = 0; (await chain.status(job.jobId)) === 'seated' && i < 40; i++)
          await sleep(250)
        await notExpired(beforePassed ? 'final' : 'before')
        await chain.settle(job.jobId, sorted)
      }
      const done: VerifierEvent = { event: 'settled', jobId }
      emit(done)
      return done
    }

    /**
     * Prunes a job's slots from the signed-vote record once the job is final on chain (settled or
     * timed out: no round of it is run again, ADR 0093). A job still open keeps them (a restart
     * may rejoin it); an unreadable status keeps them too.
     */
    async function closeRounds(jobId: Uint8Array): Promise<void> {
      if (c.signedVotes === undefined) return
      const status = await chain.status(jobId).catch(() => undefined)
      if (status !== 'settled' && status !== 'timed-out') {
        // Another member settles it later, or someone times it out: looked at again by `poll`.
        if (unclosed.size < MAX_UNCLOSED) unclosed.set(hex(jobId), jobId)
        return
      }
      unclosed.delete(hex(jobId))
      await c.signedVotes.close([beforeRoundId(jobId), jobId]).catch(() => {})
    }

    function track(job: OpenedJob): void {
      const id = hex(job.jobId)
      if (jobs.has(id)) return
      const run = runJob(job)
        .catch((err: unknown) => {
          const e: VerifierEvent = {
            event: 'job-failed',
            jobId: id,
            error: err instanceof Error ? err : new Error(String(err)),
          }
          emit(e)
          return e
        })
        .then(async (e) => {
          await closeRounds(job.jobId)
          return e
        })
      jobs.set(id, run)
      void run.then((e) => waiters.get(id)?.(e))
    }

    async function poll(): Promise<void> {
      // A few ended jobs not final on chain when they ended here, oldest first.
      for (const jobId of [...unclosed.values()].slice(0, 4)) {
        unclosed.delete(hex(jobId))
        await closeRounds(jobId)
      }
      const head = await chain.blockNumber()
      // A reorg can replace blocks already read with blocks that open jobs: the last
      // `reorgBlocks` are read again (never below where the watch began; `track` dedups).
      const again = Math.max(first, Math.min(next, head + 1 - reorgBlocks))
      if (head < again) return
      if (init.openJobs !== false) {
        // The same window: a grant a reorg moved into a block already read is opened, once per
        // block it is in (the hub refuses a job opened already, and `openJob` simulates first).
        for (const [id, t] of tried) if (t.block < again) tried.delete(id)
        for (const g of await chain.grantsIn(again, head)) {
          if (stopping.signal.aborted) return
          const id = hex(g.grantId)
          if (tried.get(id)?.hash === g.blockHash) continue
          tried.set(id, { hash: g.blockHash, block: head })
          await chain.openJob(g.grantId)
        }
      }
      for (const job of await chain.openedJobs(again, head)) track(job)
      next = Math.max(next, head + 1)
    }

    return {
      address: self,
      certificates,
      get certified() {
        return certified
      },
      async start() {
        if (loop !== undefined) return
        if (forwardingOn) {
          // Members only, bounded reads (ADR 0095): a stranger or a flood costs a status reply.
          unhandleForwards = await handle(
            c.libp2p,
            attestForwardProtocol,
            async (message, context) => {
              const inbox = forwards.get(hex(message.jobId))
              if (inbox === undefined) return { status: 'unknown-job' as const }
              return { status: await inbox.receive(context.peer.toString(), message) }
            },
            { maxReadingPerPeer: 2, maxReading: 16, timeout: 10_000 },
          )
        }
        // Jobs of open slots that ended while this member was down are closed now, however far
        // back (ADR 0093 amendment, helper 136); jobs still open are rejoined below.
        const ended =
          c.signedVotes === undefined ? undefined : await closeEndedJobs(c.signedVotes, chain)
        const head = await chain.blockNumber()
        const lookBack = Math.max(0, head - (init.historyBlocks ?? 2000))
        // Open slots in the record: this member stopped mid-job, and its jobs opened before this
        // start. Without a `fromBlock` (serve) it looks `historyBlocks` back to take its seats
        // again and, once those jobs end, prune their slots (ADR 0093 amendment).
        const resume = (c.signedVotes?.openSlots?.() ?? 0) > 0
        next = init.fromBlock ?? (resume ? lookBack : head)
        first = next
        if (init.ticketWaves !== false) {
          // Recent jobs' cut-offs, so the first job's ticket goes in its wave (ADR 0065).
          const recent = await chain.openedJobs(lookBack, head).catch(() => [])
          for (const j of recent.slice(-16)) history.watch(j.jobId)
        }
        for (const id of ended?.open ?? []) {
          // A job opened before the look-back is not among the blocks read: tracked from its grant.
          const jobId = hexToBytes(id as `0x${string}`)
          void chain
            .grant(jobId, stopping.signal)
            .then((g) => {
              // The deadline is not read by a member's run.
              if (!stopping.signal.aborted) track({ jobId, executor: g.executor, deadline: 0n })
            })
            .catch(() => {})
        }
        loop = (async () => {
          while (!stopping.signal.aborted) {
            try {
              await poll()
            } catch {
              // An RPC hiccup: the next poll reads the same blocks again.
            }
            await sleep(pollMs)
          }
        })()
      },
      async stop() {
        stopping.abort()
        await loop
        await Promise.allSettled([...jobs.values()])
        await rounds.stop()
        await unhandleForwards?.()
      },
      finished(jobId) {
        const id = hex(jobId)
        const running = jobs.get(id)
        if (running !== undefined) return running
        return new Promise((resolve) => waiters.set(id, resolve))
      },
    }
  }
}
