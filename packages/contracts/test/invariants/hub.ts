/**
 * The AttestationHub's steps in the random runner: open a job on a grant of the `attested()`
 * capsule, submit VRF tickets (./sortition.ts), seat the committee they drew, certify (pass,
 * fail, or a before fail), settle, close timed out, prove an equivocation — by the right caller
 * at the right time, or not. Each step predicts the outcome and every movement of funds (escrow
 * split into credits, slashes into payouts) and of the verifiers' reputation in the model;
 * `checkInvariants` then compares the whole state.
 */
import type { OnchainVrfProof } from '@digicap/vrf'
import { AbiCoder, concat, Interface, keccak256, type Wallet } from 'ethers'
import { attestationHubAbi } from '../../src/generated/artifacts.ts'
import type { Model } from './model.ts'
import type { BatchRpc, Mined } from './rpc.ts'

/** Blocks of the ticket window: room for a burst of every verifier's ticket. */
export const HUB_SORTITION_WINDOW = 24
/** n = 3f + 1 seats out of `verifiers` candidates. */
export const HUB_SEATS = 4
export const HUB_CERTIFICATE_BLOCKS = 40
export const HUB_VERIFIER_BPS = 2000n
export const HUB_EXECUTOR_BPS = 1000n
export const HUB_FAIL_SLASH = 3_000_000_000_000_000n
export const HUB_EQUIVOCATION_SLASH = 2_000_000_000_000_000n
/** The reporter's share of an equivocation slash (ADR 0092); the rest is burned. */
export const HUB_REPORTER_BPS = 1500n

const hub = new Interface(attestationHubAbi as never)
const VOTE_TYPES = (name: string) => ({
  [name]: [
    { name: 'jobId', type: 'bytes32' },
    { name: 'view', type: 'uint64' },
    { name: 'verdict', type: 'uint8' },
    { name: 'evidenceHash', type: 'bytes32' },
  ],
})

export interface JobModel {
  status: 'open' | 'seated' | 'certified' | 'settled' | 'timed-out'
  openedBlock: number
  deadline: number
  verdict: number
  signers: string[]
  convicted: Set<string>
  /** Seated at some point (a committee is on chain: equivocation can be proven). */
  seated: boolean
  /** The sortition's seats while tickets come in: lowest score first (as CommitteeSortition keeps them). */
  seats: { node: Wallet; score: bigint }[]
  /** The seated committee, ascending by address (as the hub stores it). */
  committee: Wallet[]
  /** keccak256(job id ‖ blockhash(openedBlock)): the VRF input, read once. */
  seed?: Uint8Array
  /** Each verifier's ticket for this job, made once. */
  proofs: Map<string, OnchainVrfProof>
}

export interface HubContext {
  address: string
  chainId: bigint
  /** CommitteeSortition, its opener the hub. */
  sortition: string
  /** The registered verifiers, candidates for every job's committee (more than the seats). */
  verifiers: Wallet[]
  /** Each verifier's reputation as NodeRegistry must hold it (starts at 1; grows per signed settlement, 0 on equivocation). */
  reputation: Map<string, bigint>
  /** The `attested()` policy: only grants of its capsules can be opened as jobs. */
  policy: string
  jobs: Map<string, JobModel>
  /** Calls that succeeded, by step (`settle:pass`, `settle:fail`, …), for the report. */
  done: Record<string, number>
}

function done(s: HubStepContext, what: string): void {
  s.hub.done[what] = (s.hub.done[what] ?? 0) + 1
}

/** The grants of the attested capsule, from the model. */
function grantsOf(s: HubStepContext) {
  const attested = new Set(
    s.model.capsules.filter((c) => c.policy === s.hub.policy).map((c) => c.id),
  )
  return [...s.model.grants.entries()].filter(([, g]) => attested.has(g.capsule))
}

export interface HubStepContext {
  rpc: BatchRpc
  model: Model
  rnd: {
    int(n: number): number
    chance(p: number): boolean
    pick<T>(xs: readonly T[]): T
    bytes32(): string
  }
  hub: HubContext
  /** Sends to the hub, or to `to` (the sortition). */
  send(from: string, data: string, to?: string): Promise<Mined>
  fail(msg: string): never
}

const committee = (job: JobModel) => job.committee.map((v) => v.address)

export function expect(s: HubStepContext, what: string, predicted: boolean, r: Mined): void {
  if (predicted !== r.ok)
    s.fail(
      `${what}: predicted ${predicted ? 'success' : 'revert'}, chain said ${r.ok ? 'success' : 'revert'}`,
    )
}

/** The next transaction's block (one block per transaction). */
export const nextBlock = (s: HubStepContext) => s.model.block + 1

export async function openJob(s: HubStepContext, caller: string): Promise<void> {
  const h = s.hub
  const grants = grantsOf(s)
  if (grants.length === 0) return
  const fresh = grants.filter(([id, g]) => !h.jobs.has(id) && s.model.next() < g.expiresAt)
  const [id, g] = s.rnd.pick(fresh.length > 0 && s.rnd.chance(0.8) ? fresh : grants)
  const escrow = s.model.escrows.get(id)
  const t = s.model.next()
  // The grant must be free: a settler took none (the runner's own settler takes held escrows).
  const ok =
    !h.jobs.has(id) &&
    t < g.expiresAt &&
    (escrow === undefined || escrow.state === 'held') &&
    g.settler === undefined
  const r = await s.send(caller, hub.encodeFunctionData('openJob', [id]))
  expect(s, `openJob (escrow ${escrow?.state ?? 'none'})`, ok, r)
  if (!ok) return
  if (escrow) escrow.state = 'disputed'
  g.settler = h.address
  done(s, 'openJob')
  h.jobs.set(id, {
    status: 'open',
    openedBlock: r.blockNumber,
    deadline: r.blockNumber + HUB_SORTITION_WINDOW + HUB_CERTIFICATE_BLOCKS,
    verdict: 0,
    signers: [],
    convicted: new Set(),
    seated: false,
    seats: [],
    committee: [],
    proofs: new Map(),
  })
}

/** Mostly a job where the step can succeed (`likely`), else any job (to try the refusals). */
export function pickJob(
  s: HubStepContext,
  likely: (job: JobModel) => boolean,
): [string, JobModel] | undefined {
  const jobs = [...s.hub.jobs.entries()]
  const good = jobs.filter(([, j]) => likely(j))
  if (good.length > 0 && s.rnd.chance(0.8)) return s.rnd.pick(good)
  return jobs.length === 0 ? undefined : s.rnd.pick(jobs)
}

export async function seat(s: HubStepContext, caller: string): Promise<void> {
  const picked = pickJob(
    s,
    (j) => j.status === 'open' && nextBlock(s) > j.openedBlock + HUB_SORTITION_WINDOW,
  )
  if (!picked) return
  const [id, job] = picked
  const ok =
    job.status === 'open' &&
    nextBlock(s) > job.openedBlock + HUB_SORTITION_WINDOW &&
    job.seats.length === HUB_SEATS
  const r = await s.send(caller, hub.encodeFunctionData('seatCommittee', [id]))
  expect(s, `seatCommittee (${job.status}, ${job.seats.length} seats)`, ok, r)
  if (job.status === 'open' && nextBlock(s) > job.openedBlock + HUB_SORTITION_WINDOW && !ok)
    done(s, 'incomplete')
  if (!ok) return
  job.status = 'seated'
  job.seated = true
  job.committee = job.seats
    .map((x) => x.node)
    .sort((a, b) => (BigInt(a.address) < BigInt(b.address) ? -1 : 1))
  // The members the VRF tickets drew, and no others.
  const seated = r.logs.map((l) => hub.parseLog(l)).find((l) => l?.name === 'CommitteeSeated')
  const onChain = (seated?.args.members as string[] | undefined)?.join()
  if (onChain !== committee(job).join())
    s.fail(`seatCommittee: chain seated ${onChain}, the tickets drew ${committee(job).join()}`)
  done(s, 'seated')
}

/** A certificate of `signers` over (round, verdict): `submitCertificate`'s or `submitBeforeCertificate`'s tail. */
async function certificate(
  s: HubStepContext,
  round: string,
  verdict: number,
  signers: Wallet[],
  members: Wallet[],
) {
  const h = s.hub
  const domain = {
    name: 'DigicapPbft',
    version: '1',
    chainId: h.chainId,
    verifyingContract: h.address,
  }
  const value = { jobId: round, viewNumber: 0n, verdict, evidenceHash: s.rnd.bytes32() }
  const message = { jobId: round, view: 0n, verdict, evidenceHash: value.evidenceHash }
  let bits = 0n
  const others: string[] = []
  const sigs: string[] = []
  for (const [i, v] of members.entries()) {
    if (signers.includes(v)) {
      bits |= 1n << BigInt(i)
      sigs.push(await v.signTypedData(domain, VOTE_TYPES('Commit'), message))
    } else others.push(v.address)
  }
  return { value, bits, others, signatures: concat(sigs) }
}

export async function certify(s: HubStepContext, caller: string): Promise<void> {
  const picked = pickJob(s, (j) => j.status === 'seated' && nextBlock(s) <= j.deadline)
  if (!picked) return
  const [id, job] = picked
  const h = s.hub
  // Mostly 3 of 4 (a quorum), sometimes 2 (too few).
  const count = s.rnd.chance(0.85) ? 3 : 2
  const signers = [...job.committee].sort(() => s.rnd.int(3) - 1).slice(0, count)
  // A before-run certificate a quarter of the time, but never before one after-run certificate
  // has gone through: a seed that certified only twice, both "before", left the after-run path
  // untaken and failed the coverage check (seed 40774889).
  const before = (s.hub.done.certificate ?? 0) > 0 && s.rnd.chance(0.25)
  const verdict = before ? 0 : s.rnd.pick([7, 7, 7, 6, 3])
  const round = before
    ? (hub.decodeFunctionResult(
        'beforeRoundOf',
        await s.rpc.call<string>('eth_call', [
          { to: h.address, data: hub.encodeFunctionData('beforeRoundOf', [id]) },
          'latest',
        ]),
      )[0] as string)
    : id
  const c = await certificate(s, round, verdict, signers, job.committee)
  const ok = job.status === 'seated' && nextBlock(s) <= job.deadline && count >= 3
  const data = before
    ? hub.encodeFunctionData('submitBeforeCertificate', [
        id,
        c.value,
        c.bits,
        c.others,
        c.signatures,
      ])
    : hub.encodeFunctionData('submitCertificate', [c.value, c.bits, c.others, c.signatures])
  const r = await s.send(caller, data)
  expect(
    s,
    `${before ? 'submitBeforeCertificate' : 'submitCertificate'} (${job.status}, ${count} signers)`,
    ok,
    r,
  )
  if (!ok) return
  job.status = 'certified'
  done(s, before ? 'beforeFail' : 'certificate')
  job.verdict = verdict
  // In seat order, as the hub pays them (`_pay` walks the committee's bitmap): the order of the
  // payees decides which locked credit a later slash seizes first (newest first).
  job.signers = job.committee.filter((v) => signers.includes(v)).map((x) => x.address)
}

/** NodeRegistry.recordPass: r + max(1, ⌊r·(1000 − r) / 16,000⌋), capped at 1000 (the committee README's curve); 0 stays 0. */
function reputationAfterPass(r: bigint): bigint {
  if (r === 0n) return 0n
  const step = (r * (1000n - r)) / 16_000n
  const next = r + (step === 0n ? 1n : step)
  return next > 1000n ? 1000n : next
}

/** A slash applied by the hub in the transaction just mined (at `m.now`). */
function slash(
  m: Model,
  node: string,
  amount: bigint,
  recipient: string,
  recipientBps: bigint,
): void {
  m.slash(node, amount, recipient, recipientBps, m.now)
}

export async function settle(s: HubStepContext, caller: string): Promise<void> {
  const picked = pickJob(s, (j) => j.status === 'certified')
  if (!picked) return
  const [id, job] = picked
  const m = s.model
  const ok = job.status === 'certified'
  const r = await s.send(caller, hub.encodeFunctionData('settle', [id, committee(job)]))
  expect(s, `settle (${job.status})`, ok, r)
  if (!ok) return
  job.status = 'settled'
  for (const signer of job.signers) {
    const rep = s.hub.reputation
    rep.set(signer, reputationAfterPass(rep.get(signer) as bigint))
  }
  const g = s.model.grants.get(id)!
  const passed = job.verdict === 7
  const escrow = m.escrows.get(id)
  // The hub took the grant at openJob: its escrow (if any) is still locked, the runner's own
  // settler cannot have moved it.
  if (escrow !== undefined && escrow.state !== 'disputed')
    s.fail(`settle: the hub's escrow ${id} was moved by another settler (${escrow.state})`)
  if (escrow?.state === 'disputed') {
    const per = (escrow.amount * HUB_VERIFIER_BPS) / 10_000n / BigInt(job.signers.length)
    const toExecutor = passed ? (escrow.amount * HUB_EXECUTOR_BPS) / 10_000n : 0n
    const toOwner = escrow.amount - per * BigInt(job.signers.length) - toExecutor
    m.resolve(
      escrow,
      [...job.signers, g.payer, g.owner],
      [...job.signers.map(() => per), toExecutor, toOwner],
      m.now,
    )
  }
  // A fail slash is burned whole (ADR 0092): the owner keeps the fee, not the executor's bond.
  if (!passed) slash(m, g.payer, HUB_FAIL_SLASH, '', 0n)
  done(s, passed ? 'settle:pass' : 'settle:fail')
}

export async function closeTimedOut(s: HubStepContext, caller: string): Promise<void> {
  const picked = pickJob(
    s,
    (j) => (j.status === 'open' || j.status === 'seated') && nextBlock(s) > j.deadline,
  )
  if (!picked) return
  const [id, job] = picked
  const ok = (job.status === 'open' || job.status === 'seated') && nextBlock(s) > job.deadline
  const t = s.model.next()
  const r = await s.send(caller, hub.encodeFunctionData('closeTimedOut', [id]))
  expect(s, `closeTimedOut (${job.status}, deadline ${job.deadline}, block ${nextBlock(s)})`, ok, r)
  if (!ok) return
  job.status = 'timed-out'
  done(s, 'timedOut')
  const escrow = s.model.escrows.get(id)
  if (escrow?.state === 'disputed') s.model.refund(escrow, t)
}

export async function equivocate(s: HubStepContext, caller: string): Promise<void> {
  const picked = pickJob(s, (j) => j.seated)
  if (!picked) return
  const [id, job] = picked
  const h = s.hub
  // An unseated job has no members yet: any verifier then (the hub must refuse).
  const member = s.rnd.pick(job.committee.length > 0 ? job.committee : h.verifiers)
  // 3: two observations (ADR 0087's, view 0), slashable since ADR 0092.
  const phase = s.rnd.int(4)
  const name = ['PrePrepare', 'Prepare', 'Commit', 'Observation'][phase] as string
  const view = phase === 3 ? 0n : 1n
  const domain = {
    name: 'DigicapPbft',
    version: '1',
    chainId: h.chainId,
    verifyingContract: h.address,
  }
  const evidenceHash = s.rnd.bytes32()
  const vote = async (verdict: number) => ({
    phase,
    viewNumber: view,
    verdict,
    evidenceHash,
    signature: await member.signTypedData(domain, VOTE_TYPES(name), {
      jobId: id,
      view,
      verdict,
      evidenceHash,
    }),
  })
  const ok = job.seated && !job.convicted.has(member.address)
  const [a, b] = [await vote(7), await vote(6)]
  // Half the time in the clear (no share: ADR 0096), half committed and revealed (the share to
  // the committed reporter, the caller): a reveal one block after the commit is too early.
  const paid = s.rnd.chance(0.5)
  let r: Mined
  if (paid) {
    const salt = s.rnd.bytes32()
    const commitment = keccak256(
      AbiCoder.defaultAbiCoder().encode(
        ['bytes32', VOTE_TUPLE, VOTE_TUPLE, 'address', 'bytes32'],
        [id, voteTuple(a), voteTuple(b), caller, salt],
      ),
    )
    expect(
      s,
      'commitReport',
      true,
      await s.send(caller, hub.encodeFunctionData('commitReport', [commitment])),
    )
    const reveal = hub.encodeFunctionData('revealEquivocation', [
      id,
      committee(job),
      a,
      b,
      caller,
      salt,
    ])
    expect(s, 'revealEquivocation one block after its commit', false, await s.send(caller, reveal))
    r = await s.send(caller, reveal)
  } else {
    r = await s.send(
      caller,
      hub.encodeFunctionData('reportEquivocation', [id, committee(job), a, b]),
    )
  }
  expect(
    s,
    `${paid ? 'revealEquivocation' : 'reportEquivocation'} (${job.status}, convicted ${job.convicted.has(member.address)})`,
    ok,
    r,
  )
  if (!ok) return
  job.convicted.add(member.address)
  h.reputation.set(member.address, 0n)
  done(s, 'equivocation')
  // A committed reporter (the caller) gets its share of what stake and unbonding funds gave; a
  // report in the clear pays no one, all of it burned.
  slash(s.model, member.address, HUB_EQUIVOCATION_SLASH, caller, paid ? HUB_REPORTER_BPS : 0n)
}

const VOTE_TUPLE = 'tuple(uint8,uint64,uint8,bytes32,bytes)'
const voteTuple = (v: {
  phase: number
  viewNumber: bigint
  verdict: number
  evidenceHash: string
  signature: string
}) => [v.phase, v.viewNumber, v.verdict, v.evidenceHash, v.signature]
