/**
 * What the invariant runner expects the three contracts to hold: a plain TypeScript model of
 * deposits, withdrawals, stakes, capsules, escrows, credits and payouts, with the rules that say
 * whether a call must succeed. Every step the runner compares the chain with it.
 */

export const ROLE_EXECUTOR = 1

export interface NodeModel {
  registered: boolean
  stake: bigint
  unbonding: bigint
  releaseAt: bigint
  roles: number
  dropped: number
  droppedAt: bigint
  /** Drawn from stake by fast-path audits the deposit did not cover (still counts for isBound). */
  drawn: bigint
  /** The libp2p peer id it registered ('' before it registers). */
  peerId: string
}

export interface ExecutorModel {
  deposit: bigint
  withdrawal: bigint
  withdrawalAt: bigint
  node: NodeModel
}

export interface CapsuleModel {
  id: string
  owner: string
  policy: string
  maxRuns: number | undefined
  minFee: bigint
  runs: number
  revoked: boolean
  /** Fast-path audits recorded although the policy refused them (`FastPathOverrun`). */
  overruns: number
  /** 1 + the run index of the latest overrun, 0 if none (`overrunRunCount`). */
  overrunRunCount: number
}

export type EscrowState = 'held' | 'disputed' | 'claimed' | 'resolved'

export interface EscrowModel {
  id: string
  amount: bigint
  claimableAt: bigint
  state: EscrowState
  owner: string
  /** The executor that paid it (a refund gives it back). */
  payer: string
  /** Paid by a fast-path audit: a refund goes back into the deposit, not the credits. */
  fastPath: boolean
  /** The part drawn from the payer's stake: a refund puts it back into its unbonding funds. */
  fromStake: bigint
}

/** Settled drawn stake owed to a payee (`lockedCredits`), withdrawable from `releaseAt`. */
export interface LockedCreditModel {
  amount: bigint
  releaseAt: bigint
}

/**
 * Drawn stake a slash of its executor may still take: in an escrow (`payee` '', until its
 * `claimableAt`) or in a locked credit (until its `releaseAt`).
 */
export interface AtRiskModel {
  grantId: string
  payee: string
  amount: bigint
}

/** What went into and came out of the contracts per account, and what it was entitled to. */
export interface Flow {
  paidIn: bigint
  paidOut: bigint
  entitled: bigint
}

export interface Params {
  minStake: bigint
  unbondingDelay: bigint
  withdrawalDelay: bigint
  disputeWindow: bigint
  auditWindow: bigint
  grantWindow: bigint
}

export class Model {
  now = 0n
  /** The latest block number (one block per transaction and per wait). */
  block = 0
  /** Every grant: its capsule, payer, the capsule's owner and its expiry. */
  readonly grants = new Map<
    string,
    {
      capsule: string
      payer: string
      owner: string
      expiresAt: bigint
      /** The settler that took the grant (`settlerOf`): only it resolves or refunds it (ADR 0068). */
      settler?: string
    }
  >()
  readonly executors = new Map<string, ExecutorModel>()
  readonly capsules: CapsuleModel[] = []
  readonly escrows = new Map<string, EscrowModel>()
  readonly credits = new Map<string, bigint>()
  /** `${payee} ${grantId}` → its locked credit (ADR 0006, amendment of helper 121). */
  readonly lockedCredits = new Map<string, LockedCreditModel>()
  /** executor → its drawn stake still at risk, oldest first. */
  readonly atRisk = new Map<string, AtRiskModel[]>()
  /** Slashes that took drawn stake from escrows or locked credits (for the report). */
  stakeSeizures = 0
  /** Settlements that locked a share of drawn stake (for the report). */
  stakeLocks = 0
  /** Refunds that put drawn stake back into unbonding (for the report). */
  stakeRefunds = 0
  readonly payouts = new Map<string, bigint>()
  /** Wei slashes sent to the burn address (ADR 0092). */
  burned = 0n
  readonly flows = new Map<string, Flow>()
  /** owner → operators */
  readonly operators = new Map<string, Set<string>>()
  /** peer id → the node that last claimed it (NodeRegistry.peerIdOwner; ADR 0054). */
  readonly peerIdOwner = new Map<string, string>()

  readonly p: Params
  readonly accounts: readonly string[]

  constructor(p: Params, accounts: readonly string[]) {
    this.p = p
    this.accounts = accounts
    for (const a of accounts) {
      this.credits.set(a, 0n)
      this.payouts.set(a, 0n)
      this.flows.set(a, { paidIn: 0n, paidOut: 0n, entitled: 0n })
    }
  }

  /** Registered and not gone (stake or funds unbonding): its peer id is its own. */
  live(a: string): boolean {
    const n = this.executor(a).node
    return n.registered && (n.stake > 0n || n.unbonding > 0n || this.p.minStake === 0n)
  }

  /** Whether `a` may claim `peerId`: nobody holds it, `a` does, or its holder has left. */
  peerIdFree(peerId: string, a: string): boolean {
    const owner = this.peerIdOwner.get(peerId)
    return owner === undefined || owner === a || !this.live(owner)
  }

  executor(a: string): ExecutorModel {
    let e = this.executors.get(a)
    if (!e) {
      e = {
        deposit: 0n,
        withdrawal: 0n,
        withdrawalAt: 0n,
        node: {
          registered: false,
          stake: 0n,
          unbonding: 0n,
          releaseAt: 0n,
          roles: 0,
          dropped: 0,
          droppedAt: 0n,
          drawn: 0n,
          peerId: '',
        },
      }
      this.executors.set(a, e)
    }
    return e
  }

  flow(a: string): Flow {
    return this.flows.get(a)!
  }

  /** The block timestamp of the next transaction (the chain mines one block a second). */
  next(): bigint {
    return this.now + 1n
  }

  isActive(a: string): boolean {
    const n = this.executor(a).node
    return n.registered && (n.roles & ROLE_EXECUTOR) !== 0 && n.stake >= this.p.minStake
  }

  isBound(a: string, t: bigint): boolean {
    const n = this.executor(a).node
    if (!n.registered) return false
    const roles = n.roles | (t < n.droppedAt + this.p.unbondingDelay ? n.dropped : 0)
    return (roles & ROLE_EXECUTOR) !== 0 && n.stake + n.unbonding + n.drawn >= this.p.minStake
  }

  unlocked(a: string): bigint {
    const e = this.executor(a)
    return e.withdrawal < e.deposit ? e.deposit - e.withdrawal : 0n
  }

  /** The policy's verdict (revocation and existence included) for one more run. */
  policyAllows(c: CapsuleModel, fee: bigint): boolean {
    if (c.revoked) return false
    if (c.maxRuns !== undefined && c.runs >= c.maxRuns) return false
    return fee >= c.minFee
  }

  /**
   * Whether a fast-path audit may be recorded on `c`: the capsule is live. The policy's verdict
   * does not matter (the key is out): a refusal is recorded as an overrun (docs/adr/0073).
   */
  auditAllows(c: CapsuleModel): boolean {
    return !c.revoked
  }

  /** Counts a fast-path grant the policy refused when its audit landed. */
  overrun(c: CapsuleModel): void {
    c.overruns++
    c.overrunRunCount = c.runs + 1
  }

  canRecord(owner: string, caller: string): boolean {
    return caller === owner || (this.operators.get(owner)?.has(caller) ?? false)
  }

  /** Counts a grant; escrows its fee. */
  /**
   * A fast-path audit's fee: the deposit first, then stake, then unbonding funds (the draw);
   * returns what the escrow holds (less than `fee` when all of them fall short).
   */
  payAudit(a: string, fee: bigint): { escrowed: bigint; fromStake: bigint } {
    const e = this.executor(a)
    const n = e.node
    const fromDeposit = fee < e.deposit ? fee : e.deposit
    e.deposit -= fromDeposit
    const shortfall = fee - fromDeposit
    const fromStake = shortfall < n.stake ? shortfall : n.stake
    n.stake -= fromStake
    const rest = shortfall - fromStake
    const fromUnbonding = rest < n.unbonding ? rest : n.unbonding
    n.unbonding -= fromUnbonding
    n.drawn += fromStake + fromUnbonding
    return {
      escrowed: fromDeposit + fromStake + fromUnbonding,
      fromStake: fromStake + fromUnbonding,
    }
  }

  /** Whether `executor` is `owner` or one of its operators: it may not be audited there. */
  executorIsKeyguard(owner: string, executor: string): boolean {
    return this.canRecord(owner, executor)
  }

  /**
   * A timeout's refund of escrow `x` at time `t`: a chain-path fee to the payer's credits, a
   * fast-path fee into its deposit, the drawn stake into its unbonding funds (the release clock
   * restarts; it no longer counts as drawn).
   */
  refund(x: EscrowModel, t: bigint): void {
    x.state = 'resolved'
    if (!x.fastPath) {
      this.credits.set(x.payer, this.credits.get(x.payer)! + x.amount)
      this.flow(x.payer).entitled += x.amount
      return
    }
    const e = this.executor(x.payer)
    e.deposit += x.amount - x.fromStake
    if (x.fromStake > 0n) {
      this.stakeRefunds++
      e.node.unbonding += x.fromStake
      e.node.releaseAt = t + this.p.unbondingDelay
      e.node.drawn = e.node.drawn > x.fromStake ? e.node.drawn - x.fromStake : 0n
    }
  }

  grant(
    c: CapsuleModel,
    grantId: string,
    fee: bigint,
    t: bigint,
    payer: string,
    audit?: { fromStake: bigint },
  ): void {
    c.runs++
    this.grants.set(grantId, {
      capsule: c.id,
      payer,
      owner: c.owner,
      expiresAt: t + this.p.grantWindow,
    })
    if (fee > 0n) {
      const fromStake = audit?.fromStake ?? 0n
      // Drawn stake is claimable no sooner than unbonding would have let it out.
      const unbonding = this.p.unbondingDelay
      const delay =
        fromStake > 0n && unbonding > this.p.disputeWindow ? unbonding : this.p.disputeWindow
      this.escrows.set(grantId, {
        id: grantId,
        amount: fee,
        claimableAt: t + delay,
        state: 'held',
        owner: c.owner,
        payer,
        fastPath: audit !== undefined,
        fromStake,
      })
      this.flow(c.owner).entitled += fee
      if (fromStake > 0n) this.risk(payer).push({ grantId, payee: '', amount: fromStake })
    }
  }

  /** `stakeClaimDelay`: the larger of the dispute window and the unbonding delay. */
  get stakeClaimDelay(): bigint {
    const { unbondingDelay, disputeWindow } = this.p
    return unbondingDelay > disputeWindow ? unbondingDelay : disputeWindow
  }

  lockedCredit(payee: string, grantId: string): LockedCreditModel {
    const key = `${payee} ${grantId}`
    let c = this.lockedCredits.get(key)
    if (!c) {
      c = { amount: 0n, releaseAt: 0n }
      this.lockedCredits.set(key, c)
    }
    return c
  }

  private lock(grantId: string, payee: string, amount: bigint, releaseAt: bigint): void {
    const c = this.lockedCredit(payee, grantId)
    c.amount += amount
    if (releaseAt > c.releaseAt) c.releaseAt = releaseAt
  }

  private risk(executor: string): AtRiskModel[] {
    let list = this.atRisk.get(executor)
    if (!list) {
      list = []
      this.atRisk.set(executor, list)
    }
    return list
  }

  /**
   * `resolveEscrow` of `x` at `t`: each share credited at once but for its pro-rata part of the
   * drawn stake, which goes back into the executor's unbonding funds (its own share) or into a
   * locked credit released at `t + stakeClaimDelay` and still at risk until then (anyone else's).
   */
  resolve(x: EscrowModel, payees: string[], amounts: bigint[], t: bigint): void {
    x.state = 'resolved'
    let left = x.amount
    let stakeLeft = x.fromStake
    let toBond = 0n
    payees.forEach((p, i) => {
      const amount = amounts[i]!
      const fromStake = amount === 0n ? 0n : (amount * stakeLeft) / left
      stakeLeft -= fromStake
      left -= amount
      if (p === x.payer) toBond += fromStake
      else if (fromStake > 0n) {
        const releaseAt = t + this.stakeClaimDelay
        this.lock(x.id, p, fromStake, releaseAt)
        this.risk(x.payer).push({ grantId: x.id, payee: p, amount: fromStake })
        this.stakeLocks++
      }
      this.credits.set(p, this.credits.get(p)! + amount - fromStake)
      this.flow(p).entitled += amount
    })
    if (toBond > 0n) {
      const n = this.executor(x.payer).node
      n.unbonding += toBond
      n.releaseAt = t + this.p.unbondingDelay
      n.drawn = n.drawn > toBond ? n.drawn - toBond : 0n
    }
  }

  /**
   * `recordFault` at `t`: up to `amount` from stake, then unbonding funds, `recipientBps` of it
   * to `recipient`'s payouts and the rest burned; past those, from the node's drawn stake still
   * at risk, newest first, all burned (ADR 0092). Returns what it took.
   */
  slash(node: string, amount: bigint, recipient: string, recipientBps: bigint, t: bigint): bigint {
    const n = this.executor(node).node
    const fromStake = amount < n.stake ? amount : n.stake
    n.stake -= fromStake
    const rest = amount - fromStake
    const fromUnbonding = rest < n.unbonding ? rest : n.unbonding
    n.unbonding -= fromUnbonding
    let slashed = fromStake + fromUnbonding
    const reward = (slashed * recipientBps) / 10_000n
    if (reward > 0n) {
      this.payouts.set(recipient, this.payouts.get(recipient)! + reward)
      this.flow(recipient).entitled += reward
    }
    this.burned += slashed - reward
    if (slashed >= amount || n.drawn === 0n) return slashed
    const list = this.risk(node)
    for (let i = list.length - 1; i >= 0 && slashed < amount; i--) {
      const r = list[i]!
      const releaseAt =
        r.payee === ''
          ? this.escrows.get(r.grantId)!.claimableAt
          : this.lockedCredit(r.payee, r.grantId).releaseAt
      if (releaseAt <= t) break
      let available: bigint
      const want = amount - slashed
      let take: bigint
      if (r.payee === '') {
        const x = this.escrows.get(r.grantId)!
        available = x.state === 'held' || x.state === 'disputed' ? x.fromStake : 0n
        take = want < available ? want : available
        x.amount -= take
        x.fromStake -= take
      } else {
        const c = this.lockedCredit(r.payee, r.grantId)
        available = r.amount < c.amount ? r.amount : c.amount
        take = want < available ? want : available
        c.amount -= take
      }
      r.amount = available - take
      if (take > 0n) {
        slashed += take
        this.burned += take
        this.stakeSeizures++
      }
      if (r.amount === 0n && i === list.length - 1) list.pop()
    }
    return slashed
  }

  totals() {
    let deposits = 0n
    let nodes = 0n
    for (const e of this.executors.values()) {
      deposits += e.deposit
      nodes += e.node.stake + e.node.unbonding
    }
    let escrows = 0n
    for (const e of this.escrows.values())
      if (e.state === 'held' || e.state === 'disputed') escrows += e.amount
    let credits = 0n
    for (const v of this.credits.values()) credits += v
    for (const v of this.lockedCredits.values()) credits += v.amount
    let payouts = 0n
    for (const v of this.payouts.values()) payouts += v
    return { accessController: deposits + escrows + credits, nodeRegistry: nodes + payouts }
  }
}

/** mulberry32: a small seeded PRNG, so that a failing sequence replays from its seed. */
export function createRandom(seed: number) {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (n: number): number => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number): boolean => next() < p,
    bytes32: (): string => {
      let s = '0x'
      for (let i = 0; i < 8; i++)
        s += Math.floor(next() * 2 ** 32)
          .toString(16)
          .padStart(8, '0')
      return s
    },
  }
}
export type Random = ReturnType<typeof createRandom>
