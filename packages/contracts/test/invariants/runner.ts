/**
 * Random call sequences against the real contracts on one anvil. Each step picks an operation
 * and an actor (often the wrong one), predicts from the model whether the call must succeed,
 * sends it, and fails on any disagreement; then it reads the whole state in one batch and checks
 * the invariants (see `checkInvariants`).
 *
 * The fast-path step plays the race of ADR 0006: `checkAccess` by `eth_call`, then up to three
 * hostile moves by the executor (pull the deposit, unbond, drop the role, let time pass inside
 * the audit window), then the audit, which must be mined whenever `checkAccess` allowed it.
 */
import { AbiCoder, type Interface, parseEther, type Wallet } from 'ethers'
import type { DigicapContracts } from '../../src/deploy.ts'
import {
  ACCESS_REQUEST_TYPES,
  accessRequestDomain,
  jobParamsHash,
  type SignedAccessRequest,
} from '../../src/fastpath.ts'
import { CID } from '../helpers.ts'
import * as hubSteps from './hub.ts'
import { type CapsuleModel, Model, type Random } from './model.ts'
import type { BatchRpc, Mined } from './rpc.ts'
import * as sortitionSteps from './sortition.ts'

export interface Actors {
  admin: string
  settler: string
  manager: string
  owners: string[]
  executors: Wallet[]
  stranger: string
  /** An account named operator by owners[0]. */
  operator: string
}

export interface RunContext {
  rpc: BatchRpc
  c: DigicapContracts
  addresses: { accessController: string; nodeRegistry: string; capsuleRegistry: string }
  chainId: bigint
  actors: Actors
  policies: { address: string; maxRuns: number | undefined; minFee: bigint }[]
  model: Model
  rnd: Random
  /** Transactions sent, and state reads (eth_call, balances), for the report. */
  txs: number
  reads: number
  /** Fast-path releases whose audit the executor raced with at least one move, and were mined. */
  racedAudits: number
  /** Audits mined after another keyguard's audit had spent the deposit checkAccess saw. */
  sharedAudits: number
  /** Items of `recordFastPathGrants` batches recorded, and skipped (with the others recorded). */
  batchRecorded: number
  batchSkipped: number
  /** Fast-path audits recorded as overruns (the policy refused them when they landed). */
  overruns: number
  /** Rejoins of a node with funds unbonding but no stake whose peer id another node took. */
  rejoinsWithIdTaken: number
  /** The AttestationHub under test (named settler and manager), when the run includes it. */
  hub?: hubSteps.HubContext
  /** The burn address's balance when the run started: slashes add exactly `model.burned` (ADR 0092). */
  burnBase: bigint
}

/** The hub steps' view of the run: sends to the hub, counted like every transaction. */
function hubStep(ctx: RunContext): hubSteps.HubStepContext {
  const hub = ctx.hub as hubSteps.HubContext
  return {
    rpc: ctx.rpc,
    model: ctx.model,
    rnd: ctx.rnd,
    hub,
    fail,
    async send(from, data, to = hub.address) {
      ctx.txs++
      const r = await ctx.rpc.send(from, to, data)
      ctx.model.now++
      ctx.model.block = r.blockNumber
      return r
    },
  }
}

export class InvariantError extends Error {}

/** NodeRegistry.BURN_ADDRESS (and the AccessController's): where slashes no one is paid go (ADR 0092). */
export const BURN_ADDRESS = '0x000000000000000000000000000000000000dEaD'
const UNIT = parseEther('0.001')
const coder = AbiCoder.defaultAbiCoder()

function fail(msg: string): never {
  throw new InvariantError(msg)
}

function expectOutcome(what: string, predicted: boolean, r: Mined): void {
  if (predicted !== r.ok)
    fail(
      `${what}: predicted ${predicted ? 'success' : 'revert'}, chain said ${r.ok ? 'success' : 'revert'}`,
    )
}

function parse(iface: Interface, r: Mined, name: string) {
  const out: Record<string, unknown>[] = []
  for (const log of r.logs) {
    const parsed = iface.parseLog(log)
    if (parsed?.name === name) out.push(parsed.args.toObject())
  }
  return out
}

async function sendTx(
  ctx: RunContext,
  from: string,
  target: 'ac' | 'nr' | 'cr',
  iface: Interface,
  fn: string,
  args: unknown[],
  value = 0n,
): Promise<Mined> {
  const to =
    target === 'ac'
      ? ctx.addresses.accessController
      : target === 'nr'
        ? ctx.addresses.nodeRegistry
        : ctx.addresses.capsuleRegistry
  ctx.txs++
  const r = await ctx.rpc.send(from, to, iface.encodeFunctionData(fn, args), value)
  ctx.model.now++
  ctx.model.block = r.blockNumber
  if (r.ok && value > 0n) ctx.model.flow(from).paidIn += value
  return r
}

const ac = (ctx: RunContext) => ctx.c.accessController.interface
const nr = (ctx: RunContext) => ctx.c.nodeRegistry.interface
const cr = (ctx: RunContext) => ctx.c.capsuleRegistry.interface

// ------------------------------------------------------------------ deposits

async function deposit(ctx: RunContext, e: string): Promise<void> {
  const amount = UNIT / 2n + BigInt(ctx.rnd.int(5)) * UNIT
  const r = await sendTx(ctx, e, 'ac', ac(ctx), 'deposit', [], amount)
  expectOutcome('deposit', true, r)
  ctx.model.executor(e).deposit += amount
}

async function requestWithdrawal(ctx: RunContext, e: string, all = false): Promise<void> {
  const m = ctx.model.executor(e)
  const amount = all ? ctx.model.unlocked(e) : BigInt(ctx.rnd.int(4)) * (UNIT / 2n)
  const t = ctx.model.next()
  const ok = amount > 0n && m.withdrawal + amount <= m.deposit
  const r = await sendTx(ctx, e, 'ac', ac(ctx), 'requestWithdrawal', [amount])
  expectOutcome(`requestWithdrawal(${amount})`, ok, r)
  if (ok) {
    m.withdrawal += amount
    m.withdrawalAt = t + ctx.model.p.withdrawalDelay
  }
}

async function cancelWithdrawal(ctx: RunContext, e: string): Promise<void> {
  const m = ctx.model.executor(e)
  const ok = m.withdrawal > 0n
  const r = await sendTx(ctx, e, 'ac', ac(ctx), 'cancelWithdrawal', [])
  expectOutcome('cancelWithdrawal', ok, r)
  if (ok) {
    m.withdrawal = 0n
    m.withdrawalAt = 0n
  }
}

async function withdrawDeposit(ctx: RunContext, e: string): Promise<void> {
  const m = ctx.model.executor(e)
  const t = ctx.model.next()
  const amount = m.withdrawal < m.deposit ? m.withdrawal : m.deposit
  const ok = m.withdrawal > 0n && t >= m.withdrawalAt && amount > 0n
  const r = await sendTx(ctx, e, 'ac', ac(ctx), 'withdrawDeposit', [])
  expectOutcome(`withdrawDeposit at ${t} (release ${m.withdrawalAt})`, ok, r)
  if (ok) {
    const [ev] = parse(ac(ctx), r, 'DepositWithdrawn')
    if (ev?.amount !== amount) fail(`withdrawDeposit sent ${ev?.amount}, expected ${amount}`)
    m.deposit -= amount
    m.withdrawal = 0n
    m.withdrawalAt = 0n
    ctx.model.flow(e).paidOut += amount
  }
}

// ------------------------------------------------------------------ nodes

/** A fresh peer id, or now and then one another node registered (live or gone; ADR 0054). */
function somePeerId(ctx: RunContext, e: string): string {
  const others = [...ctx.model.executors.entries()]
    .filter(([a, x]) => a !== e && x.node.peerId !== '')
    .map(([, x]) => x.node.peerId)
  return others.length > 0 && ctx.rnd.chance(0.15) ? ctx.rnd.pick(others) : ctx.rnd.bytes32()
}

/** The model's side of a successful register or update to `peerId`. */
function claimPeerId(ctx: RunContext, e: string, peerId: string): void {
  const n = ctx.model.executor(e).node
  if (n.peerId !== peerId && ctx.model.peerIdOwner.get(n.peerId) === e) {
    ctx.model.peerIdOwner.delete(n.peerId)
  }
  ctx.model.peerIdOwner.set(peerId, e)
  n.peerId = peerId
}

async function registerNode(ctx: RunContext, e: string): Promise<void> {
  const n = ctx.model.executor(e).node
  const stake = ctx.rnd.chance(0.2)
    ? ctx.model.p.minStake - 1n
    : ctx.model.p.minStake * BigInt(1 + ctx.rnd.int(2))
  const roles = ctx.rnd.pick([1, 1, 3, 2])
  const peerId = somePeerId(ctx, e)
  const ok = !n.registered && stake >= ctx.model.p.minStake && ctx.model.peerIdFree(peerId, e)
  const r = await sendTx(
    ctx,
    e,
    'nr',
    nr(ctx),
    'register',
    [peerId, ctx.rnd.bytes32(), roles],
    stake,
  )
  expectOutcome('register', ok, r)
  if (ok) {
    Object.assign(n, { registered: true, stake, roles })
    claimPeerId(ctx, e, peerId)
  }
}

async function addStake(ctx: RunContext, e: string): Promise<void> {
  const n = ctx.model.executor(e).node
  const amount = ctx.model.p.minStake / 2n
  // A node that left comes back only with a peer id no live node holds. Any node without stake
  // claims it again: a refunded audit can put a gone node's funds back into unbonding.
  const back = n.registered && n.stake === 0n
  const ok = n.registered && (!back || ctx.model.peerIdFree(n.peerId, e))
  const r = await sendTx(ctx, e, 'nr', nr(ctx), 'addStake', [], amount)
  expectOutcome('addStake', ok, r)
  if (!ok) return
  if (back) ctx.model.peerIdOwner.set(n.peerId, e)
  n.stake += amount
}

async function requestUnbond(ctx: RunContext, e: string, all = false): Promise<void> {
  const n = ctx.model.executor(e).node
  const amount = all ? n.stake : ctx.model.p.minStake / BigInt(1 + ctx.rnd.int(3))
  const t = ctx.model.next()
  const ok = n.registered && amount > 0n && amount <= n.stake
  const r = await sendTx(ctx, e, 'nr', nr(ctx), 'requestUnbond', [amount])
  expectOutcome(`requestUnbond(${amount})`, ok, r)
  if (ok) {
    n.stake -= amount
    n.unbonding += amount
    n.releaseAt = t + ctx.model.p.unbondingDelay
  }
}

async function withdrawStake(ctx: RunContext, e: string): Promise<void> {
  const n = ctx.model.executor(e).node
  const t = ctx.model.next()
  const ok = n.registered && n.unbonding > 0n && t >= n.releaseAt
  const r = await sendTx(ctx, e, 'nr', nr(ctx), 'withdraw', [])
  expectOutcome('withdraw (stake)', ok, r)
  if (ok) {
    const [ev] = parse(nr(ctx), r, 'Withdrawn')
    if (ev?.amount !== n.unbonding) fail(`withdraw sent ${ev?.amount}, expected ${n.unbonding}`)
    ctx.model.flow(e).paidOut += n.unbonding
    n.unbonding = 0n
  }
}

/** An executor that left comes back: takes out what finished unbonding, restakes, takes the role. */
async function rejoin(ctx: RunContext, e: string): Promise<void> {
  const n = ctx.model.executor(e).node
  if (!n.registered) return registerNode(ctx, e)
  if (n.unbonding > 0n && ctx.model.next() >= n.releaseAt) await withdrawStake(ctx, e)
  // Its peer id went to another node while it had no stake: it takes a new one first. Not only
  // when it is gone: a refunded audit can put funds back into its unbonding after another node
  // took the id, and then addStake must revert (seed 1707002223 spun here for ever).
  if (n.stake === 0n && !ctx.model.peerIdFree(n.peerId, e)) {
    if (ctx.model.live(e)) ctx.rejoinsWithIdTaken++
    await updateRoles(ctx, e, n.roles === 0 ? 1 : n.roles, ctx.rnd.bytes32())
  }
  for (let tries = 0; n.stake < ctx.model.p.minStake; tries++) {
    if (tries === 4) fail(`rejoin: ${e} still has ${n.stake} staked after ${tries} addStake calls`)
    await addStake(ctx, e)
  }
  if ((n.roles & 1) === 0) await updateRoles(ctx, e, n.roles | 1, ctx.rnd.bytes32())
}

async function updateRoles(
  ctx: RunContext,
  e: string,
  roles = ctx.rnd.pick([1, 2, 3]),
  peerId = ctx.rnd.chance(0.1) && ctx.model.executor(e).node.peerId !== ''
    ? ctx.model.executor(e).node.peerId
    : somePeerId(ctx, e),
): Promise<void> {
  const n = ctx.model.executor(e).node
  const t = ctx.model.next()
  const ok = n.registered && ctx.model.peerIdFree(peerId, e)
  const r = await sendTx(ctx, e, 'nr', nr(ctx), 'update', [peerId, ctx.rnd.bytes32(), roles])
  expectOutcome('update', ok, r)
  if (!ok) return
  claimPeerId(ctx, e, peerId)
  const dropped = n.roles & ~roles
  if (dropped !== 0) {
    const still = t < n.droppedAt + ctx.model.p.unbondingDelay ? n.dropped : 0
    n.dropped = still | dropped
    n.droppedAt = t
  }
  n.roles = roles
}

async function slash(ctx: RunContext, e: string): Promise<void> {
  const n = ctx.model.executor(e).node
  const { manager, stranger, owners } = ctx.actors
  const caller = ctx.rnd.chance(0.8) ? manager : stranger
  const recipient = ctx.rnd.pick([...owners, ctx.actors.settler])
  // A share of the slash to the recipient, the rest burned (ADR 0092); all of it at times.
  const recipientBps = BigInt(ctx.rnd.pick([0, 2500, 10_000]))
  // Sometimes past its stake and unbonding funds: into the drawn stake still at risk.
  const amount = ctx.rnd.chance(0.3)
    ? n.stake + n.unbonding + ctx.model.p.minStake
    : ctx.model.p.minStake / BigInt(1 + ctx.rnd.int(4))
  const ok = caller === manager && n.registered
  const r = await sendTx(ctx, caller, 'nr', nr(ctx), 'recordFault', [
    e,
    ctx.rnd.chance(0.5),
    amount,
    recipient,
    recipientBps,
    ctx.rnd.bytes32(),
  ])
  expectOutcome(`slash by ${caller === manager ? 'manager' : 'stranger'}`, ok, r)
  if (ok) ctx.model.slash(e, amount, recipient, recipientBps, ctx.model.now)
}

async function claimPayout(ctx: RunContext, who: string): Promise<void> {
  const amount = ctx.model.payouts.get(who)!
  const r = await sendTx(ctx, who, 'nr', nr(ctx), 'claimPayout', [])
  expectOutcome('claimPayout', amount > 0n, r)
  if (amount > 0n) {
    ctx.model.payouts.set(who, 0n)
    ctx.model.flow(who).paidOut += amount
  }
}

// ------------------------------------------------------------------ capsules and grants

async function registerCapsule(ctx: RunContext): Promise<void> {
  if (ctx.model.capsules.length >= 12) return revokeCapsule(ctx)
  const owner = ctx.rnd.pick(ctx.actors.owners)
  const policy = ctx.rnd.pick(ctx.policies)
  const id = ctx.rnd.bytes32()
  const r = await sendTx(ctx, owner, 'cr', cr(ctx), 'register', [
    id,
    policy.address,
    CID,
    ctx.rnd.bytes32(),
    ctx.rnd.bytes32(),
    ctx.rnd.bytes32(),
  ])
  expectOutcome('register capsule', true, r)
  ctx.model.capsules.push({
    id,
    owner,
    policy: policy.address,
    maxRuns: policy.maxRuns,
    minFee: policy.minFee,
    runs: 0,
    overruns: 0,
    overrunRunCount: 0,
    revoked: false,
  })
}

async function revokeCapsule(ctx: RunContext): Promise<void> {
  const c = ctx.rnd.pick(ctx.model.capsules)
  const caller = ctx.rnd.chance(0.7) ? c.owner : ctx.actors.stranger
  const ok = caller === c.owner && !c.revoked
  const r = await sendTx(ctx, caller, 'cr', cr(ctx), 'revoke', [c.id])
  expectOutcome('revoke', ok, r)
  if (ok) c.revoked = true
}

function pickFee(ctx: RunContext): bigint {
  return ctx.rnd.pick([0n, UNIT / 2n, UNIT, UNIT, 2n * UNIT])
}

function grantOf(ctx: RunContext, r: Mined, c: CapsuleModel, executor: string): string {
  const [g] = parse(ac(ctx), r, 'AccessGranted')
  if (!g) fail('a grant without AccessGranted')
  if (g.capsuleId !== c.id || g.executor !== executor)
    fail('AccessGranted names another capsule or executor')
  return g.grantId as string
}

async function requestAccess(
  ctx: RunContext,
  requester: string,
  capsule?: CapsuleModel,
): Promise<void> {
  const c = capsule ?? ctx.rnd.pick(ctx.model.capsules)
  const fee = pickFee(ctx)
  const t = ctx.model.next()
  const ok = ctx.model.isActive(requester) && ctx.model.policyAllows(c, fee)
  const r = await sendTx(
    ctx,
    requester,
    'ac',
    ac(ctx),
    'requestAccess',
    [c.id, ctx.rnd.bytes32(), ctx.rnd.bytes32(), '0x'],
    fee,
  )
  expectOutcome(
    `requestAccess (runs ${c.runs}/${c.maxRuns}, revoked ${c.revoked}, fee ${fee})`,
    ok,
    r,
  )
  if (ok) ctx.model.grant(c, grantOf(ctx, r, c, requester), fee, t, requester)
}

interface Signed {
  req: SignedAccessRequest
  signature: string
}
let lastRecorded: { signed: Signed; recorder: string } | undefined

async function checkAccess(ctx: RunContext, c: CapsuleModel, executor: string, fee: bigint) {
  ctx.reads++
  const data = ac(ctx).encodeFunctionData('checkAccess', [
    c.id,
    executor,
    ctx.rnd.bytes32(),
    ctx.rnd.bytes32(),
    fee,
    true,
    '0x',
  ])
  const raw = await ctx.rpc.call<string>('eth_call', [
    { to: ctx.addresses.accessController, data },
    'latest',
  ])
  const [allowed, reason] = coder.decode(['bool', 'uint8'], raw)
  return { allowed: allowed as boolean, reason: Number(reason) }
}

/** The keyguard's order: checkAccess, release, (executor races), audit. */
async function fastPath(ctx: RunContext, anyExecutor: Wallet): Promise<void> {
  const m = ctx.model
  // Mostly a request the keyguard should serve (so that the race is run often), else anything.
  const ready = ctx.actors.executors.filter(
    (x) => m.isActive(x.address) && m.executor(x.address).node.unbonding === 0n,
  )
  const live = m.capsules.filter((x) => m.policyAllows(x, x.minFee))
  const likely = ready.length > 0 && live.length > 0 && ctx.rnd.chance(0.7)
  const executor = likely ? ctx.rnd.pick(ready) : anyExecutor
  const e = executor.address
  const c = likely ? ctx.rnd.pick(live) : ctx.rnd.pick(m.capsules)
  let fee = likely && ctx.rnd.chance(0.7) ? c.minFee : pickFee(ctx)
  if (likely && m.unlocked(e) < fee) {
    await deposit(ctx, e)
    fee = m.unlocked(e) < fee ? 0n : fee
  }
  // What checkAccess must answer now (the block it reads is the latest: time `now`).
  const predicted =
    m.unlocked(e) >= fee &&
    m.isActive(e) &&
    m.executor(e).node.unbonding === 0n &&
    m.policyAllows(c, fee)
  const verdict = await checkAccess(ctx, c, e, fee)
  if (verdict.allowed !== predicted)
    fail(`checkAccess said ${verdict.allowed} (reason ${verdict.reason}), the model ${predicted}`)
  const recorder = ctx.rnd.chance(0.85)
    ? c.owner
    : ctx.rnd.pick([ctx.actors.operator, ctx.actors.stranger])
  if (!verdict.allowed && ctx.rnd.chance(0.7)) return // a keyguard that refuses
  const signed: Signed = {
    req: {
      capsuleId: c.id,
      executor: e,
      ephemeralKey: ctx.rnd.bytes32(),
      measurement: ctx.rnd.bytes32(),
      jobParamsHash: jobParamsHash('0x'),
      fee,
      nonce: BigInt(ctx.rnd.bytes32()),
      // A keyguard accepts no request expiring later than the audit window.
      expiry: m.now + m.p.auditWindow,
    },
    signature: '',
  }
  signed.signature = await executor.signTypedData(
    accessRequestDomain(ctx.chainId, ctx.addresses.accessController),
    ACCESS_REQUEST_TYPES,
    signed.req,
  )
  // The key has left. The executor races the audit.
  const moves = ctx.rnd.chance(0.2) ? 0 : 1 + ctx.rnd.int(3)
  for (let i = moves; i > 0; i--) {
    const move = ctx.rnd.int(7)
    if (move === 6) {
      // A chain-path grant on the same capsule mined before the audit (ADR 0073): it may take
      // the last run; the audit must still be recorded (an overrun).
      const other = ctx.rnd.pick(ctx.actors.executors).address
      if (m.isActive(other)) await requestAccess(ctx, other, c)
    } else if (move === 0) await requestWithdrawal(ctx, e, true)
    else if (move === 1) await withdrawDeposit(ctx, e)
    else if (move === 2) await requestUnbond(ctx, e, true)
    else if (move === 3) await withdrawStake(ctx, e)
    else if (move === 4) await updateRoles(ctx, e, 2)
    else {
      // At most three thirds of the window minus the blocks: the audit lands inside it.
      await wait(ctx, BigInt(1 + ctx.rnd.int(Number(m.p.auditWindow / 3n) - 10)))
    }
  }
  const mustSucceed = verdict.allowed && recorder === c.owner
  await record(ctx, signed, recorder, mustSucceed)
  if (mustSucceed && moves > 0) ctx.racedAudits++
}

/**
 * An owner records an audit whose fee passes the executor's deposit (a colluding owner, or
 * keyguards that released against one deposit): the rest is drawn from its stake, and the
 * escrow's share of it must stay at risk until released (ADR 0006, amendment of helper 121).
 */
async function drawAudit(ctx: RunContext): Promise<void> {
  const m = ctx.model
  const bound = ctx.actors.executors.filter((x) => m.isBound(x.address, m.next()))
  if (bound.length === 0) return
  const executor = ctx.rnd.pick(bound)
  const e = executor.address
  const n = m.executor(e).node
  const live = m.capsules.filter((x) => !x.revoked && !m.executorIsKeyguard(x.owner, e))
  if (live.length === 0 || n.stake + n.unbonding === 0n) return
  const c = ctx.rnd.pick(live)
  const fee = m.executor(e).deposit + 1n + (n.stake + n.unbonding) / BigInt(1 + ctx.rnd.int(3))
  const req: SignedAccessRequest = {
    capsuleId: c.id,
    executor: e,
    ephemeralKey: ctx.rnd.bytes32(),
    measurement: ctx.rnd.bytes32(),
    jobParamsHash: jobParamsHash('0x'),
    fee,
    nonce: BigInt(ctx.rnd.bytes32()),
    expiry: m.now + m.p.auditWindow,
  }
  const signature = await executor.signTypedData(
    accessRequestDomain(ctx.chainId, ctx.addresses.accessController),
    ACCESS_REQUEST_TYPES,
    req,
  )
  await record(ctx, { req, signature }, c.owner, false)
}

/**
 * Two keyguards (two capsules) release to one executor on one nonce before either audit: both
 * `checkAccess` calls see the same deposit. Both audits must be mined; the second draws from
 * stake what the first left short.
 */
async function fanOut(ctx: RunContext): Promise<void> {
  const m = ctx.model
  const ready = ctx.actors.executors.filter(
    (x) => m.isActive(x.address) && m.executor(x.address).node.unbonding === 0n,
  )
  const live = m.capsules.filter((x) => m.policyAllows(x, x.minFee))
  if (ready.length === 0 || live.length < 2) return
  const executor = ctx.rnd.pick(ready)
  const e = executor.address
  const first = ctx.rnd.pick(live)
  const second = ctx.rnd.pick(live.filter((x) => x !== first))
  let fee = first.minFee > second.minFee ? first.minFee : second.minFee
  if (m.unlocked(e) < fee) await deposit(ctx, e)
  if (m.unlocked(e) < fee) return
  // Often the whole unlocked deposit: the second audit then finds it spent.
  if (ctx.rnd.chance(0.6)) fee = m.unlocked(e)
  const nonce = BigInt(ctx.rnd.bytes32())
  const released: Signed[] = []
  for (const c of [first, second]) {
    const verdict = await checkAccess(ctx, c, e, fee)
    if (!verdict.allowed) fail(`checkAccess refused a fan-out release (reason ${verdict.reason})`)
    const signed: Signed = {
      req: {
        capsuleId: c.id,
        executor: e,
        ephemeralKey: ctx.rnd.bytes32(),
        measurement: ctx.rnd.bytes32(),
        jobParamsHash: jobParamsHash('0x'),
        fee,
        nonce,
        expiry: m.now + m.p.auditWindow,
      },
      signature: '',
    }
    signed.signature = await executor.signTypedData(
      accessRequestDomain(ctx.chainId, ctx.addresses.accessController),
      ACCESS_REQUEST_TYPES,
      signed.req,
    )
    released.push(signed)
  }
  const short = m.executor(e).deposit < 2n * fee
  for (const [i, c] of [first, second].entries()) await record(ctx, released[i]!, c.owner, true)
  if (short) ctx.sharedAudits++
}

async function record(ctx: RunContext, signed: Signed, recorder: string, mustSucceed: boolean) {
  const m = ctx.model
  const { req } = signed
  const c = m.capsules.find((x) => x.id === req.capsuleId)!
  const t = m.next()
  const ok =
    m.canRecord(c.owner, recorder) &&
    !m.executorIsKeyguard(c.owner, req.executor) &&
    t <= req.expiry &&
    !(
      lastRecorded?.signed.req.nonce === req.nonce &&
      lastRecorded.signed.req.capsuleId === req.capsuleId &&
      lastRecorded.signed.req.executor === req.executor
    ) &&
    m.isBound(req.executor, t) &&
    m.auditAllows(c)
  // A policy that refuses now records an overrun, never a revert (docs/adr/0073).
  const overrun = ok && !m.policyAllows(c, req.fee)
  const r = await sendTx(ctx, recorder, 'ac', ac(ctx), 'recordFastPathGrant', [
    req,
    '0x',
    signed.signature,
  ])
  if (mustSucceed && !r.ok)
    fail('the executor voided a fast-path audit that checkAccess allowed before the release')
  expectOutcome('recordFastPathGrant', ok, r)
  if (!ok) return
  // A deposit short of the fee never voids the audit: the stake pays the rest (ADR 0006).
  const paid = m.payAudit(req.executor, req.fee)
  const grantId = grantOf(ctx, r, c, req.executor)
  checkOverrun(ctx, r, c, grantId, overrun)
  if (overrun) m.overrun(c)
  m.grant(c, grantId, paid.escrowed, t, req.executor, paid)
  lastRecorded = { signed, recorder }
}

/** `FastPathOverrun` is emitted exactly for an audit the policy refused, naming its grant. */
function checkOverrun(
  ctx: RunContext,
  r: Mined,
  c: CapsuleModel,
  grantId: string,
  overrun: boolean,
) {
  const events = parse(ac(ctx), r, 'FastPathOverrun').filter((e) => e.grantId === grantId)
  if (events.length !== (overrun ? 1 : 0))
    fail(
      `audit of ${grantId}: ${events.length} FastPathOverrun, the model expects ${overrun ? 1 : 0}`,
    )
  if (overrun && events[0]?.capsuleId !== c.id) fail('FastPathOverrun names another capsule')
  if (overrun) ctx.overruns++
}

/**
 * Several audits in one `recordFastPathGrants` (how a keyguard batches them): releases of live
 * capsules, a replay of an item of the same batch or of the last recorded audit, a request signed
 * by another executor's key. Each item must be recorded exactly when a lone `recordFastPathGrant`
 * would be (in order, each seeing the ones before it), a failing one must change nothing and be
 * reported by `FastPathAuditFailed`, and the batch itself must be mined.
 */
async function batchAudit(ctx: RunContext): Promise<void> {
  const m = ctx.model
  const live = m.capsules.filter((x) => m.policyAllows(x, x.minFee))
  if (live.length === 0) return
  const recorder = ctx.rnd.chance(0.85)
    ? ctx.rnd.pick(live).owner
    : ctx.rnd.pick([ctx.actors.operator, ctx.actors.stranger])
  const items: { signed: Signed; forged: boolean }[] = []
  for (let n = 2 + ctx.rnd.int(4); n > 0; n--) {
    const kind = ctx.rnd.int(10)
    if (kind === 0 && items.length > 0) {
      items.push(ctx.rnd.pick(items))
      continue
    }
    if (kind === 1 && lastRecorded !== undefined) {
      items.push({ signed: lastRecorded.signed, forged: false })
      continue
    }
    const bound = ctx.actors.executors.filter((x) => m.isBound(x.address, m.next()))
    const executor = ctx.rnd.pick(
      bound.length > 0 && ctx.rnd.chance(0.8) ? bound : ctx.actors.executors,
    )
    const others = ctx.actors.executors.filter((x) => x !== executor)
    const forged = kind === 2 && others.length > 0
    // Mostly the recorder's own live capsules (one keyguard serves one owner), else any.
    const own = live.filter((x) => m.canRecord(x.owner, recorder))
    const c = ctx.rnd.pick(own.length > 0 && ctx.rnd.chance(0.8) ? own : m.capsules)
    let fee = ctx.rnd.chance(0.6) ? c.minFee : pickFee(ctx)
    if (m.unlocked(executor.address) < fee && ctx.rnd.chance(0.5)) {
      await deposit(ctx, executor.address)
      if (m.unlocked(executor.address) < fee) fee = 0n
    }
    const req: SignedAccessRequest = {
      capsuleId: c.id,
      executor: executor.address,
      ephemeralKey: ctx.rnd.bytes32(),
      measurement: ctx.rnd.bytes32(),
      jobParamsHash: jobParamsHash('0x'),
      fee,
      nonce: BigInt(ctx.rnd.bytes32()),
      expiry: m.now + m.p.auditWindow,
    }
    const signer = forged ? ctx.rnd.pick(others) : executor
    const signature = await signer.signTypedData(
      accessRequestDomain(ctx.chainId, ctx.addresses.accessController),
      ACCESS_REQUEST_TYPES,
      req,
    )
    items.push({ signed: { req, signature }, forged })
  }
  const t = m.next()
  const used = new Set<string>()
  const nonceKey = (r: SignedAccessRequest) => `${r.executor}|${r.capsuleId}|${r.nonce}`
  if (lastRecorded !== undefined) used.add(nonceKey(lastRecorded.signed.req))
  const r = await sendTx(ctx, recorder, 'ac', ac(ctx), 'recordFastPathGrants', [
    items.map((x) => x.signed.req),
    items.map(() => '0x'),
    items.map((x) => x.signed.signature),
  ])
  expectOutcome('recordFastPathGrants (the batch itself)', true, r)
  const granted = parse(ac(ctx), r, 'AccessGranted')
  const failed = new Set(parse(ac(ctx), r, 'FastPathAuditFailed').map((f) => Number(f.index)))
  let g = 0
  for (const [i, { signed, forged }] of items.entries()) {
    const { req } = signed
    const c = m.capsules.find((x) => x.id === req.capsuleId)
    const ok =
      c !== undefined &&
      m.canRecord(c.owner, recorder) &&
      !m.executorIsKeyguard(c.owner, req.executor) &&
      t <= req.expiry &&
      !forged &&
      !used.has(nonceKey(req)) &&
      m.isBound(req.executor, t) &&
      m.auditAllows(c)
    if (ok === failed.has(i))
      fail(`batch item ${i}: predicted ${ok ? 'recorded' : 'skipped'}, chain said the opposite`)
    if (!ok || c === undefined) {
      ctx.batchSkipped++
      continue
    }
    ctx.batchRecorded++
    const ev = granted[g++]
    if (ev === undefined || ev.capsuleId !== c.id || ev.executor !== req.executor)
      fail(`batch item ${i}: no matching AccessGranted`)
    used.add(nonceKey(req))
    const overrun = !m.policyAllows(c, req.fee)
    const paid = m.payAudit(req.executor, req.fee)
    checkOverrun(ctx, r, c, ev.grantId as string, overrun)
    if (overrun) m.overrun(c)
    m.grant(c, ev.grantId as string, paid.escrowed, t, req.executor, paid)
    lastRecorded = { signed, recorder }
  }
  if (g !== granted.length) fail('recordFastPathGrants emitted more AccessGranted than it recorded')
}

async function replayAudit(ctx: RunContext): Promise<void> {
  if (!lastRecorded) return
  const { signed, recorder } = lastRecorded
  const r = await sendTx(ctx, recorder, 'ac', ac(ctx), 'recordFastPathGrant', [
    signed.req,
    '0x',
    signed.signature,
  ])
  expectOutcome('a replayed recordFastPathGrant', false, r)
}

// ------------------------------------------------------------------ escrows

async function claimFees(ctx: RunContext): Promise<void> {
  const m = ctx.model
  const owner = ctx.rnd.pick(ctx.actors.owners)
  const all = [...m.escrows.values()]
  if (all.length === 0) return
  const picked = new Set<string>()
  for (let i = 1 + ctx.rnd.int(3); i > 0; i--) {
    // Mostly the owner's own claimable escrows, sometimes anything.
    const own = all.filter((x) => x.owner === owner && x.state === 'held')
    const pool = own.length > 0 && ctx.rnd.chance(0.8) ? own : all
    picked.add(ctx.rnd.pick(pool).id)
  }
  const ids = [...picked]
  const t = m.next()
  let total = 0n
  let ok = true
  for (const id of ids) {
    const x = m.escrows.get(id)!
    if (x.state !== 'held' || t < x.claimableAt || x.owner !== owner) ok = false
    total += x.amount
  }
  const r = await sendTx(ctx, owner, 'ac', ac(ctx), 'claimFees', [ids])
  expectOutcome('claimFees', ok && total > 0n, r)
  if (!r.ok) return
  for (const id of ids) m.escrows.get(id)!.state = 'claimed'
  m.flow(owner).paidOut += total
}

async function dispute(ctx: RunContext): Promise<void> {
  const held = [...ctx.model.escrows.values()].filter((x) => x.state === 'held')
  const all = [...ctx.model.escrows.values()]
  if (all.length === 0) return
  const drawn = held.filter((x) => x.fromStake > 0n)
  const x =
    drawn.length > 0 && ctx.rnd.chance(0.5)
      ? ctx.rnd.pick(drawn)
      : held.length > 0 && ctx.rnd.chance(0.8)
        ? ctx.rnd.pick(held)
        : ctx.rnd.pick(all)
  const caller = ctx.rnd.chance(0.8)
    ? ctx.actors.settler
    : ctx.rnd.pick([x.owner, ctx.actors.stranger])
  const g = ctx.model.grants.get(x.id)!
  const ok = caller === ctx.actors.settler && x.state === 'held' && g.settler === undefined
  const r = await sendTx(ctx, caller, 'ac', ac(ctx), 'disputeEscrow', [x.id])
  expectOutcome('disputeEscrow', ok, r)
  if (ok) {
    x.state = 'disputed'
    g.settler = caller
  }
}

async function resolve(ctx: RunContext): Promise<void> {
  const disputed = [...ctx.model.escrows.values()].filter((x) => x.state === 'disputed')
  if (disputed.length === 0) return
  const x = ctx.rnd.pick(disputed)
  const caller = ctx.rnd.chance(0.85) ? ctx.actors.settler : ctx.actors.stranger
  const payees = [x.owner, ctx.rnd.pick(ctx.actors.executors).address]
  const a = (x.amount * BigInt(ctx.rnd.int(101))) / 100n
  // Sometimes amounts that do not add up.
  const skew = ctx.rnd.chance(0.1) ? 1n : 0n
  const amounts = [a, x.amount - a + skew]
  // Only the settler that took the grant (not the hub's, when the hub opened its job).
  const taken = ctx.model.grants.get(x.id)!.settler
  const ok = caller === ctx.actors.settler && skew === 0n && taken === caller
  const r = await sendTx(ctx, caller, 'ac', ac(ctx), 'resolveEscrow', [x.id, payees, amounts])
  expectOutcome('resolveEscrow', ok, r)
  if (ok) ctx.model.resolve(x, payees, amounts, ctx.model.now)
}

/** A timeout's refund: the locked escrow back to where it came from (ADR 0027, ADR 0006). */
async function refund(ctx: RunContext): Promise<void> {
  const all = [...ctx.model.escrows.values()]
  if (all.length === 0) return
  const disputed = all.filter((x) => x.state === 'disputed')
  const x = disputed.length > 0 && ctx.rnd.chance(0.8) ? ctx.rnd.pick(disputed) : ctx.rnd.pick(all)
  const caller = ctx.rnd.chance(0.85) ? ctx.actors.settler : ctx.actors.stranger
  const taken = ctx.model.grants.get(x.id)!.settler
  const ok = caller === ctx.actors.settler && x.state === 'disputed' && taken === caller
  const t = ctx.model.next()
  const r = await sendTx(ctx, caller, 'ac', ac(ctx), 'refundEscrow', [x.id])
  expectOutcome('refundEscrow', ok, r)
  if (ok) ctx.model.refund(x, t)
}

async function withdrawCredit(ctx: RunContext, who: string): Promise<void> {
  const amount = ctx.model.credits.get(who)!
  const r = await sendTx(ctx, who, 'ac', ac(ctx), 'withdrawCredit', [])
  expectOutcome('withdrawCredit', amount > 0n, r)
  if (amount > 0n) {
    ctx.model.credits.set(who, 0n)
    ctx.model.flow(who).paidOut += amount
  }
}

/**
 * `withdrawLockedCredits` of up to three grants (one maybe another payee's): all or nothing,
 * refused while one of them with an amount is not released (`CreditLocked`).
 */
async function withdrawLocked(ctx: RunContext, who: string): Promise<void> {
  const m = ctx.model
  const mine = [...m.lockedCredits.entries()].filter(([k]) => k.startsWith(`${who} `))
  const others = [...m.lockedCredits.keys()].filter((k) => !k.startsWith(`${who} `))
  const ids = new Set<string>()
  for (let k = ctx.rnd.int(3); k >= 0 && mine.length > 0; k--)
    ids.add(ctx.rnd.pick(mine)[0].split(' ')[1]!)
  if (others.length > 0 && ctx.rnd.chance(0.2)) ids.add(ctx.rnd.pick(others).split(' ')[1]!)
  if (ids.size === 0) return
  const t = m.next()
  const picked = [...ids].map((id) => m.lockedCredit(who, id))
  const total = picked.reduce((s, c) => s + c.amount, 0n)
  const ok = total > 0n && picked.every((c) => c.amount === 0n || t >= c.releaseAt)
  const r = await sendTx(ctx, who, 'ac', ac(ctx), 'withdrawLockedCredits', [[...ids]])
  expectOutcome('withdrawLockedCredits', ok, r)
  if (!ok) return
  for (const c of picked) {
    if (c.amount > 0n) c.releaseAt = 0n
    c.amount = 0n
  }
  m.flow(who).paidOut += total
}

// ------------------------------------------------------------------ time

async function wait(ctx: RunContext, seconds: bigint): Promise<void> {
  const t = ctx.model.now + seconds
  await ctx.rpc.batch([
    { method: 'evm_setNextBlockTimestamp', params: [Number(t)] },
    { method: 'evm_mine', params: [] },
  ])
  ctx.model.now = t
  ctx.model.block++
}

async function randomWait(ctx: RunContext): Promise<void> {
  const p = ctx.model.p
  const d = ctx.rnd.pick([
    BigInt(1 + ctx.rnd.int(60)),
    p.auditWindow,
    p.withdrawalDelay + 1n,
    p.disputeWindow + 1n,
    p.unbondingDelay + 1n,
  ])
  await wait(ctx, d)
}

// ------------------------------------------------------------------ the step

/** One random operation; weights favour the moves that change funds. */
export async function step(ctx: RunContext): Promise<string> {
  const { rnd, actors } = ctx
  const executor = rnd.pick(actors.executors)
  const e = executor.address
  const anyone = rnd.pick([
    ...actors.owners,
    ...actors.executors.map((x) => x.address),
    actors.settler,
    actors.stranger,
  ])
  const ops: [number, string, () => Promise<void>][] = [
    [8, 'deposit', () => deposit(ctx, e)],
    [5, 'requestWithdrawal', () => requestWithdrawal(ctx, e)],
    [1, 'cancelWithdrawal', () => cancelWithdrawal(ctx, e)],
    [4, 'withdrawDeposit', () => withdrawDeposit(ctx, e)],
    [3, 'registerNode', () => registerNode(ctx, rnd.chance(0.9) ? e : actors.stranger)],
    [2, 'addStake', () => addStake(ctx, e)],
    [2, 'requestUnbond', () => requestUnbond(ctx, e)],
    [4, 'rejoin', () => rejoin(ctx, e)],
    [3, 'withdrawStake', () => withdrawStake(ctx, e)],
    [2, 'updateRoles', () => updateRoles(ctx, e)],
    [2, 'slash', () => slash(ctx, e)],
    [2, 'claimPayout', () => claimPayout(ctx, anyone)],
    [2, 'registerCapsule', () => registerCapsule(ctx)],
    [1, 'revokeCapsule', () => revokeCapsule(ctx)],
    [8, 'requestAccess', () => requestAccess(ctx, rnd.chance(0.9) ? e : actors.stranger)],
    [12, 'fastPath', () => fastPath(ctx, executor)],
    [3, 'fanOut', () => fanOut(ctx)],
    [2, 'drawAudit', () => drawAudit(ctx)],
    [1, 'replayAudit', () => replayAudit(ctx)],
    [4, 'batchAudit', () => batchAudit(ctx)],
    [5, 'claimFees', () => claimFees(ctx)],
    [3, 'dispute', () => dispute(ctx)],
    [3, 'resolve', () => resolve(ctx)],
    [2, 'refund', () => refund(ctx)],
    [2, 'withdrawCredit', () => withdrawCredit(ctx, anyone)],
    [3, 'withdrawLockedCredits', () => withdrawLocked(ctx, anyone)],
    [5, 'wait', () => randomWait(ctx)],
    ...(ctx.hub === undefined
      ? []
      : ([
          [6, 'openJob', () => hubSteps.openJob(hubStep(ctx), anyone)],
          [14, 'tickets', () => sortitionSteps.tickets(hubStep(ctx), actors.stranger)],
          [6, 'seatCommittee', () => hubSteps.seat(hubStep(ctx), anyone)],
          [6, 'certify', () => hubSteps.certify(hubStep(ctx), anyone)],
          [5, 'settle', () => hubSteps.settle(hubStep(ctx), anyone)],
          [2, 'closeTimedOut', () => hubSteps.closeTimedOut(hubStep(ctx), anyone)],
          [2, 'equivocate', () => hubSteps.equivocate(hubStep(ctx), anyone)],
        ] as [number, string, () => Promise<void>][])),
  ]
  const total = ops.reduce((s, [w]) => s + w, 0)
  let x = rnd.int(total)
  for (const [w, name, run] of ops) {
    if (x < w) {
      await run()
      return name
    }
    x -= w
  }
  throw new Error('unreachable')
}

export function resetRunState(): void {
  lastRecorded = undefined
}

// ------------------------------------------------------------------ invariants

/**
 * Reads the state of the three contracts in one batch and checks:
 * - each contract's ETH balance == its `totalHeld` == the sum of what it owes (deposits, open
 *   escrows and credits; stake, unbonding and payouts), all equal to the model's;
 * - every deposit, pending withdrawal, node record, credit, payout and run count as modelled;
 * - no capsule counts more runs than its policy's maxRuns;
 * - no account took out more than it paid in plus what it was entitled to (fees escrowed for its
 *   capsules, credits, slash payouts);
 * - the chain clock is the model's (the predictions rely on it).
 */
export async function checkInvariants(ctx: RunContext): Promise<void> {
  const m = ctx.model
  const { accessController: acAddr, nodeRegistry: nrAddr } = ctx.addresses
  const executors = [...m.executors.keys()]
  const accounts = m.accounts
  const lockedKeys = [...m.lockedCredits.keys()]
  const call = (to: string, iface: Interface, fn: string, args: unknown[]) => ({
    method: 'eth_call',
    params: [{ to, data: iface.encodeFunctionData(fn, args) }, 'latest'],
  })
  const calls = [
    { method: 'eth_getBalance', params: [acAddr, 'latest'] },
    { method: 'eth_getBalance', params: [nrAddr, 'latest'] },
    { method: 'eth_getBalance', params: [BURN_ADDRESS, 'latest'] },
    { method: 'eth_getBlockByNumber', params: ['latest', false] },
    call(acAddr, ac(ctx), 'totalHeld', []),
    call(nrAddr, nr(ctx), 'totalHeld', []),
    ...executors.flatMap((e) => [
      call(acAddr, ac(ctx), 'deposits', [e]),
      call(acAddr, ac(ctx), 'pendingWithdrawals', [e]),
      call(nrAddr, nr(ctx), 'getNode', [e]),
      call(nrAddr, nr(ctx), 'drawnForAudits', [e]),
    ]),
    ...accounts.flatMap((a) => [
      call(acAddr, ac(ctx), 'credits', [a]),
      call(nrAddr, nr(ctx), 'payouts', [a]),
    ]),
    ...lockedKeys.map((k) => call(acAddr, ac(ctx), 'lockedCredits', k.split(' '))),
    ...m.capsules.flatMap((c) => [
      call(acAddr, ac(ctx), 'runCount', [c.id]),
      call(acAddr, ac(ctx), 'overrunRunCount', [c.id]),
    ]),
  ]
  ctx.reads += calls.length
  const out = await ctx.rpc.batch(calls)
  let i = 0
  const big = () => BigInt(out[i++] as string)
  const dec = (iface: Interface, fn: string) => iface.decodeFunctionResult(fn, out[i++] as string)
  const balAc = big()
  const balNr = big()
  const balBurn = big()
  const block = out[i++] as { timestamp: string }
  const heldAc = big()
  const heldNr = big()
  const totals = m.totals()
  if (BigInt(block.timestamp) !== m.now)
    fail(`chain clock ${BigInt(block.timestamp)}, model ${m.now}`)
  if (balAc !== heldAc) fail(`AccessController balance ${balAc} != totalHeld ${heldAc}`)
  if (balNr !== heldNr) fail(`NodeRegistry balance ${balNr} != totalHeld ${heldNr}`)
  // What left both contracts without a payee went to the burn address, to the wei.
  if (balBurn - ctx.burnBase !== m.burned)
    fail(`burned ${balBurn - ctx.burnBase} on chain, model ${m.burned}`)
  if (heldAc !== totals.accessController)
    fail(
      `AccessController totalHeld ${heldAc} != deposits + open escrows + credits ${totals.accessController}`,
    )
  if (heldNr !== totals.nodeRegistry)
    fail(`NodeRegistry totalHeld ${heldNr} != stake + unbonding + payouts ${totals.nodeRegistry}`)
  for (const e of executors) {
    const x = m.executor(e)
    const dep = big()
    const [wAmount, wAt] = dec(ac(ctx), 'pendingWithdrawals')
    const [node] = dec(nr(ctx), 'getNode')
    const drawn = big()
    if (drawn !== x.node.drawn)
      fail(`drawn for audits of ${e}: chain ${drawn}, model ${x.node.drawn}`)
    if (dep !== x.deposit) fail(`deposit of ${e}: chain ${dep}, model ${x.deposit}`)
    if (wAmount !== x.withdrawal || wAt !== x.withdrawalAt)
      fail(
        `pending withdrawal of ${e}: chain ${wAmount}@${wAt}, model ${x.withdrawal}@${x.withdrawalAt}`,
      )
    const n = x.node
    const reputation = ctx.hub?.reputation.get(e)
    if (reputation !== undefined && node.reputation !== reputation)
      fail(`reputation of verifier ${e}: chain ${node.reputation}, model ${reputation}`)
    if (
      node.registered !== n.registered ||
      node.stake !== n.stake ||
      node.unbonding !== n.unbonding ||
      Number(node.roles) !== n.roles ||
      (n.unbonding > 0n && node.unbondingReleaseAt !== n.releaseAt)
    )
      fail(
        `node ${e}: chain ${node.stake}/${node.unbonding}/${node.roles}, model ${n.stake}/${n.unbonding}/${n.roles}`,
      )
  }
  for (const a of accounts) {
    const credit = big()
    const payout = big()
    if (credit !== m.credits.get(a))
      fail(`credit of ${a}: chain ${credit}, model ${m.credits.get(a)}`)
    if (payout !== m.payouts.get(a))
      fail(`payout of ${a}: chain ${payout}, model ${m.payouts.get(a)}`)
    const f = m.flow(a)
    if (f.paidOut > f.paidIn + f.entitled)
      fail(
        `${a} took out ${f.paidOut}, more than it paid in (${f.paidIn}) plus its due (${f.entitled})`,
      )
  }
  for (const k of lockedKeys) {
    const [amount, releaseAt] = dec(ac(ctx), 'lockedCredits')
    const c = m.lockedCredits.get(k)!
    if (amount !== c.amount || releaseAt !== c.releaseAt)
      fail(`locked credit ${k}: chain ${amount}@${releaseAt}, model ${c.amount}@${c.releaseAt}`)
  }
  for (const c of m.capsules) {
    const runs = big()
    const overrunAt = big()
    if (runs !== BigInt(c.runs)) fail(`runCount of ${c.id}: chain ${runs}, model ${c.runs}`)
    if (overrunAt !== BigInt(c.overrunRunCount))
      fail(`overrunRunCount of ${c.id}: chain ${overrunAt}, model ${c.overrunRunCount}`)
    // Past maxRuns only by fast-path audits of keys already out, each an overrun (ADR 0073).
    if (c.maxRuns !== undefined && runs > BigInt(c.maxRuns + c.overruns))
      fail(`${c.id} ran ${runs} times, maxRuns ${c.maxRuns}, overruns ${c.overruns}`)
  }
}

export { Model }
