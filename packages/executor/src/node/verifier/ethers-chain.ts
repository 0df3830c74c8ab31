/**
 * `VerifierChain` on ethers: AttestationHub, CommitteeSortition, AccessController and
 * NodeRegistry of one deployment. Calls that another member may have made first (seating,
 * the certificate, settling, opening a job) are simulated before they are sent and re-checked
 * after a revert, so a lost race costs no gas and throws nothing.
 */
import { randomBytes } from 'node:crypto'
import { setTimeout as wait } from 'node:timers/promises'
import { ChainReadError, normalizeAddress, toHex } from '@digicap/capsule-core'
import { equivocationCall, equivocationReveal, MIN_SORTITION_WEIGHT } from '@digicap/committee'
import {
  connectDigicap,
  connectSettlement,
  type DigicapAddresses,
  type SettlementAddresses,
} from '@digicap/contracts'
import type { ContractRunner } from 'ethers'
import { getBytes, type Provider } from 'ethers'
import type { GrantSeen, JobStatus, OpenedJob, VerifierChain } from './types.ts'

export interface EthersVerifierChainParameters {
  readonly addresses: Pick<DigicapAddresses, 'nodeRegistry' | 'accessController' | 'chainId'> &
    Partial<DigicapAddresses>
  readonly settlement: SettlementAddresses
  /** Sends this member's transactions (its account). */
  readonly runner: ContractRunner & { provider: Provider | null }
  /**
   * The last blocks of a `JobOpened` / `AccessGranted` read that are read one by one by block
   * hash (EIP-234) rather than by range: an RPC whose log index lags answers a range with `[]`
   * for blocks it has not indexed, a hash it does not have with an error (ADR 0085). A block's
   * logs are read once per hash. Default 32.
   */
  readonly tipBlocks?: number
  /**
   * How long an equivocation report waits for its commitment to age `revealDelay` blocks
   * before it reports without the reporter's share (ADR 0096). Default 120 000 ms.
   */
  readonly revealWaitMs?: number
}

/** Sends of an equivocation reveal that still simulates before the report in the clear. */
const REVEAL_SENDS = 3

/** Reads of a granted job's `AccessGranted` event before giving up, and the pause between them. */
const GRANT_LOG_TRIES = 30
const GRANT_LOG_RETRY_MS = 1000

/** A block's logs by hash: they never change, a reorg gives the block another hash. */
interface BlockEvents {
  readonly jobs: OpenedJob[]
  readonly grants: GrantSeen[]
}

/** Blocks whose header or events are kept (a few windows' worth). */
const KEPT_BLOCKS = 256

const STATUS: readonly JobStatus[] = ['none', 'open', 'seated', 'certified', 'settled', 'timed-out']

export function ethersVerifierChain(p: EthersVerifierChainParameters): VerifierChain {
  const c = connectDigicap(p.addresses as DigicapAddresses, p.runner)
  const { attestationHub: hub, committeeSortition: sortition } = connectSettlement(
    p.settlement,
    p.runner,
  )
  const provider = p.runner.provider as Provider
  const tipBlocks = Math.max(1, p.tipBlocks ?? 32)
  const ac = c.accessController
  const parseJob = (l: unknown): OpenedJob => {
    const a = (l as { args: { jobId: string; executor: string; deadline: bigint } }).args
    return {
      jobId: getBytes(a.jobId),
      executor: normalizeAddress(a.executor, 'executor'),
      deadline: BigInt(a.deadline),
    }
  }
  const parseGrant = (l: { args: unknown; blockHash: string }): GrantSeen => ({
    grantId: getBytes((l.args as { grantId: string }).grantId),
    blockHash: l.blockHash.toLowerCase(),
  })
  const headers = new Map<string, { number: number; parentHash: string }>()
  const events = new Map<string, Promise<BlockEvents>>()
  const keep = <V>(m: Map<string, V>, k: string, v: V) => {
    m.set(k, v)
    if (m.size > KEPT_BLOCKS) m.delete(m.keys().next().value as string)
  }
  /** The hashes of blocks [from, to], read down from `to` through the parent hashes. */
  async function hashes(from: number, to: number): Promise<string[]> {
    const top = await provider.getBlock(to)
    if (top?.hash == null)
      throw new ChainReadError('A block to read is not on chain', { details: { block: to } })
    const out = [top.hash.toLowerCase()]
    let cur = { number: top.number, parentHash: top.parentHash.toLowerCase() }
    keep(headers, out[0] as string, cur)
    while (cur.number > from) {
      const hash = cur.parentHash
      let parent = headers.get(hash)
      if (parent === undefined) {
        const b = await provider.getBlock(hash)
        if (b === null)
          throw new ChainReadError('A parent block is not on chain (a reorg meanwhile)', {
            details: { block: hash },
          })
        parent = { number: b.number, parentHash: b.parentHash.toLowerCase() }
        keep(headers, hash, parent)
      }
      out.push(hash)
      cur = parent
    }
    return out.reverse()
  }
  /** A block's events by its hash: a node without the block throws, never answers none. */
  function eventsAt(blockHash: string): Promise<BlockEvents> {
    const known = events.get(blockHash)
    if (known !== undefined) return known
    const read = (async (): Promise<BlockEvents> => {
      const [hubAddress, acAddress] = await Promise.all([hub.getAddress(), ac.getAddress()])
      const jobTopic = hub.interface.getEvent('JobOpened')?.topicHash
      const grantTopic = ac.interface.getEvent('AccessGranted')?.topicHash
      const logs = await provider.getLogs({
        blockHash,
        address: [hubAddress, acAddress],
        topics: [[jobTopic as string, grantTopic as string]],
      })
      const jobs: OpenedJob[] = []
      const grants: GrantSeen[] = []
      for (const log of logs) {
        if (log.blockHash.toLowerCase() !== blockHash) continue
        if (log.address.toLowerCase() === hubAddress.toLowerCase() && log.topics[0] === jobTopic)
          jobs.push(parseJob(hub.interface.parseLog(log)))
        else if (
          log.address.toLowerCase() === acAddress.toLowerCase() &&
          log.topics[0] === grantTopic
        )
          grants.push(parseGrant({ args: ac.interface.parseLog(log)?.args, blockHash }))
      }
      return { jobs, grants }
    })()
    keep(events, blockHash, read)
    read.catch(() => {
      if (events.get(blockHash) === read) events.delete(blockHash)
    })
    return read
  }
  /** Events of [from, to]: the last `tipBlocks` by block hash, the blocks below by range. */
  async function eventsIn<T>(
    from: number,
    to: number,
    byRange: (from: number, to: number) => Promise<T[]>,
    pick: (e: BlockEvents) => T[],
  ): Promise<T[]> {
    if (to < from) return []
    const tipFrom = Math.max(from, to - tipBlocks + 1)
    const out = tipFrom > from ? await byRange(from, tipFrom - 1) : []
    for (const hash of await hashes(tipFrom, to)) out.push(...pick(await eventsAt(hash)))
    return out
  }
  let sameRegistry: Promise<boolean> | undefined
  let sameScale: Promise<boolean> | undefined
  const status = async (jobId: Uint8Array): Promise<JobStatus> => {
    const job = await hub.jobs(toHex(jobId))
    return STATUS[Number(job.status)] ?? 'none'
  }
  /**
   * Simulates, then sends and waits: `refused` when the simulation reverts (nothing sent),
   * `failed` when the send or its wait threw (an RPC error, the transaction reverted).
   */
  const send = async (
    call: { staticCall(...a: unknown[]): Promise<unknown>; (...a: unknown[]): Promise<unknown> },
    args: unknown[],
  ): Promise<'mined' | 'refused' | 'failed'> => {
    try {
      await call.staticCall(...args)
    } catch {
      return 'refused'
    }
    try {
      const tx = (await call(...args)) as { wait(): Promise<unknown> }
      await tx.wait()
      return 'mined'
    } catch {
      return 'failed'
    }
  }
  /** {@link send}, true when mined. */
  const attempt = async (
    call: { staticCall(...a: unknown[]): Promise<unknown>; (...a: unknown[]): Promise<unknown> },
    args: unknown[],
  ): Promise<boolean> => (await send(call, args)) === 'mined'
  return {
    chainId: BigInt(p.addresses.chainId),
    hub: normalizeAddress(p.settlement.attestationHub, 'attestationHub'),
    blockNumber: () => provider.getBlockNumber(),
    async head() {
      const b = await provider.getBlock('latest')
      if (b?.hash == null) throw new ChainReadError('The head block is not readable')
      return { number: b.number, hash: getBytes(b.hash) }
    },
    async blockOf(hash) {
      const b = await provider.getBlock(toHex(hash))
      return b?.hash == null ? undefined : b.number
    },
    openedJobs: (from, to) =>
      eventsIn(
        from,
        to,
        async (a, b) => (await hub.queryFilter(hub.filters.JobOpened!(), a, b)).map(parseJob),
        (e) => e.jobs,
      ),
    grantsIn: (from, to) =>
      eventsIn(
        from,
        to,
        async (a, b) =>
          (await ac.queryFilter(ac.filters.AccessGranted!(), a, b)).map((l) =>
            parseGrant(l as unknown as { args: unknown; blockHash: string }),
          ),
        (e) => e.grants,
      ),
    openJob: (grantId) => attempt(hub.openJob as never, [toHex(grantId)]),
    async grant(jobId, signal) {
      // The executor and key from the grant's state (a lagging log index cannot hide it); the
      // measurement is only in its `AccessGranted` event. A granted job whose event a range
      // read answers `[]` for is a lagging index, not a bogus job: read again for a while
      // rather than fail this member's part in the committee.
      const id = toHex(jobId)
      const state = (await ac.getGrant(id)) as { executor: string; ephemeralKey: string }
      const executor = normalizeAddress(state.executor, 'executor') // GrantNotFound reverts
      const fromBlock = p.addresses.deployBlock ?? 0
      for (let attempt = 0; ; attempt++) {
        signal?.throwIfAborted()
        const logs = await ac.queryFilter(ac.filters.AccessGranted!(id), fromBlock)
        const a = (
          logs.at(-1) as unknown as
            | { args: { executor: string; ephemeralKey: string; measurement: string } }
            | undefined
        )?.args
        if (a !== undefined) {
          if (
            normalizeAddress(a.executor, 'executor') !== executor ||
            a.ephemeralKey.toLowerCase() !== String(state.ephemeralKey).toLowerCase() ||
            !(await ac.grantMeasurementMatches(id, a.measurement))
          )
            throw new ChainReadError('AccessGranted does not match the grant', {
              details: { grantId: id },
              hint: 'An RPC answered a log that is not the grant on chain: check the RPC.',
            })
          return {
            executor,
            ephemeralKey: getBytes(a.ephemeralKey),
            measurement: getBytes(a.measurement),
          }
        }
        if (attempt >= GRANT_LOG_TRIES - 1)
          throw new ChainReadError('The RPC has no AccessGranted log for a granted job', {
            details: { grantId: id, tries: GRANT_LOG_TRIES },
            hint: "The RPC's log index lags behind its state: use another RPC or wait for it.",
          })
        await wait(GRANT_LOG_RETRY_MS, undefined, signal ? { signal } : {})
      }
    },
    async node(address) {
      const n = await c.nodeRegistry.getNode(address)
      return { peerId: getBytes(n.peerId), attestationKeyHash: getBytes(n.attestationKeyHash) }
    },
    async sortition(jobId) {
      const [seed, grantBlock, window] = await Promise.all([
        sortition.seedOf(toHex(jobId)),
        sortition.grantBlockOf(toHex(jobId)),
        sortition.window(),
      ])
      return {
        seed: getBytes(seed),
        grantBlock: Number(grantBlock),
        lastBlock: Number(grantBlock + window),
      }
    },
    async standing(address) {
      // The weight the sortition reads is its own registry's: a deployment whose addresses name
      // another registry must not steer the waves (a failed read sends the ticket, ADR 0065).
      sameRegistry ??= sortition.registry().then(
        (a) => a.toLowerCase() === String(p.addresses.nodeRegistry).toLowerCase(),
        (err: unknown) => {
          sameRegistry = undefined
          throw err
        },
      )
      if (!(await sameRegistry))
        throw new Error('CommitteeSortition reads another NodeRegistry than the one configured')
      const n = await c.nodeRegistry.getNode(address)
      return { stake: BigInt(n.stake), reputation: BigInt(n.reputation) }
    },
    async cutoff(jobId) {
      // The cut-off is compared with this node's own scores (`sortitionScore`, × 2⁹⁶ since ADR
      // 0024's amendment). A CommitteeSortition deployed before it scores × 2⁶⁴ and has no
      // MIN_WEIGHT: its cut-offs would make a ticket it would seat look beaten. The read fails
      // instead, and a failed read sends the ticket (ADR 0065).
      sameScale ??= sortition.MIN_WEIGHT().then(
        (w) => BigInt(w) === MIN_SORTITION_WEIGHT,
        (err: unknown) => {
          const code = (err as { code?: unknown }).code
          // no such function (a revert without data): that contract's answer, kept
          if (code === 'CALL_EXCEPTION' || code === 'BAD_DATA') return false
          sameScale = undefined
          throw err
        },
      )
      if (!(await sameScale))
        throw new Error(
          'CommitteeSortition scores on another scale than this node (deployed before ADR 0024’s amendment): tickets go at once',
        )
      const [full, score, closed] = await sortition.cutoffOf(toHex(jobId))
      return { full, score: BigInt(score), closed }
    },
    async submitTicket(jobId, proof) {
      const args = [toHex(jobId), proof.publicKey as never, proof.proof as never] as const
      // Seating costs more when other tickets land first in the same block (a longer sorted
      // insert): an estimate made before them would run out of gas.
      const gas = await sortition.submitTicket.estimateGas(...args)
      const tx = await sortition.submitTicket(...args, { gasLimit: (gas * 3n) / 2n + 50_000n })
      await tx.wait()
    },
    async seats(jobId) {
      const [members, closed] = await sortition.committeeOf(toHex(jobId))
      return { members: members.map((m: string) => normalizeAddress(m, 'member')), closed }
    },
    async seatCommittee(jobId) {
      if ((await status(jobId)) !== 'open') return
      await attempt(hub.seatCommittee as never, [toHex(jobId)])
    },
    status,
    async beforeVerdict(jobId) {
      const job = await hub.jobs(toHex(jobId))
      return (['none', 'pass', 'fail'] as const)[Number(job.before)] ?? 'none'
    },
    async submitBeforeCertificate(call) {
      if ((await status(getBytes(call.jobId))) !== 'seated') return
      await attempt(hub.submitBeforeCertificate as never, [
        call.jobId,
        call.value,
        call.signerBits,
        call.others,
        call.signatures,
      ])
    },
    async submitCertificate(call) {
      if ((await status(getBytes(call.value.jobId))) !== 'seated') return
      await attempt(hub.submitCertificate as never, [
        call.value,
        call.signerBits,
        call.others,
        call.signatures,
      ])
    },
    async reportEquivocation(jobId, round, committee, proof) {
      const { a, b } = equivocationCall(proof)
      const args = [toHex(jobId), [...committee], a, b]
      const report = round === 'before' ? hub.reportBeforeEquivocation : hub.reportEquivocation
      // Convicted already, or not seated: nothing to commit to.
      try {
        await (report as unknown as { staticCall(...a: unknown[]): Promise<unknown> }).staticCall(
          ...args,
        )
      } catch {
        return false
      }
      // Paid only through a commit–reveal (ADR 0096): a report in the clear is copied from the
      // mempool. A runner with no address (read-only), or a reveal that cannot come in time,
      // reports without the share: the conviction first.
      const reporter = await (p.runner as { getAddress?: () => Promise<string> })
        .getAddress?.()
        .catch(() => undefined)
      if (reporter !== undefined) {
        const reveal = equivocationReveal(proof, normalizeAddress(reporter), randomBytes(32))
        if (await attempt(hub.commitReport as never, [reveal.commitment])) {
          const committedAt = await hub.reportCommits(reveal.commitment)
          const readyAt = committedAt + (await hub.revealDelay())
          const deadline = performance.now() + (p.revealWaitMs ?? 120_000)
          while (BigInt(await provider.getBlockNumber()) < readyAt) {
            if (performance.now() > deadline) break
            await wait(500)
          }
          if (BigInt(await provider.getBlockNumber()) >= readyAt) {
            const revealed =
              round === 'before' ? hub.revealBeforeEquivocation : hub.revealEquivocation
            // A send that failed while the reveal still simulates (an RPC error, a dropped
            // request) is sent again: the report in the clear below would give the share up.
            // Lost to another reveal, it now simulates `AlreadyConvicted` and stops.
            for (let tries = 0; tries < REVEAL_SENDS; tries++) {
              const sent = await send(revealed as never, [...args, reveal.reporter, reveal.salt])
              if (sent === 'mined') return true
              if (sent === 'refused' || performance.now() > deadline) break
              await wait(500)
            }
          }
          // A reveal mined while its wait failed (an RPC hiccup) still convicted for us: the
          // chain's event says who, so `reported` stays true to it.
          const proven = await hub
            .queryFilter(hub.filters.EquivocationProven!(toHex(jobId), proof.member), committedAt)
            .catch(() => [])
          const by = (l: unknown) => String((l as { args: { reporter: string } }).args.reporter)
          if (proven.some((l) => by(l).toLowerCase() === reporter.toLowerCase())) return true
        }
      }
      return attempt(report as never, args)
    },
    async settle(jobId, committee) {
      if ((await status(jobId)) !== 'certified') return
      await attempt(hub.settle as never, [toHex(jobId), [...committee]])
    },
  }
}
