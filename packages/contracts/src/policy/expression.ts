import { isHex, normalizeAddress } from '@digicap/capsule-core'
import { PolicyExpressionError } from '../errors.ts'
import { formatEther, parseEther } from './ether.ts'

/** An unlock rule as data. Build it with the constructors below or `parsePolicyExpression`. */
export type PolicyExpression =
  | { readonly kind: 'minReputation'; readonly min: number }
  | { readonly kind: 'allowlist'; readonly addresses: readonly string[] }
  | { readonly kind: 'denylist'; readonly addresses: readonly string[] }
  | { readonly kind: 'environment'; readonly measurement: string }
  | { readonly kind: 'after'; readonly timestamp: number }
  | { readonly kind: 'before'; readonly timestamp: number }
  | { readonly kind: 'maxRuns'; readonly runs: number }
  | { readonly kind: 'fee'; readonly wei: bigint }
  | { readonly kind: 'attested' }
  | { readonly kind: 'all'; readonly conditions: readonly PolicyExpression[] }
  | { readonly kind: 'any'; readonly conditions: readonly PolicyExpression[] }
  | { readonly kind: 'not'; readonly condition: PolicyExpression }

/** Limits that keep generated policies small and their gas bounded. */
export const POLICY_LIMITS = {
  /** Highest reputation a node can have (NodeRegistry.MAX_REPUTATION). */
  maxReputation: 1000,
  /** Most addresses in one allowlist or denylist. */
  maxAddresses: 64,
  /** Most conditions (leaves and combinators) in one rule. */
  maxNodes: 64,
  /** Deepest nesting of all/any/not. */
  maxDepth: 16,
  /** Highest maxRuns value. */
  maxRuns: 2 ** 32 - 1,
  /** Longest policy text accepted by the parser. */
  maxTextLength: 16_384,
} as const

const fail = (message: string, details: Record<string, unknown> = {}): never => {
  throw new PolicyExpressionError(message, { details })
}

function checkInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
    fail(`${name} must be an integer from ${min} to ${max}`, {
      condition: name,
      value: String(value),
    })
  return value as number
}

function checkAddresses(list: unknown, name: string): string[] {
  if (!Array.isArray(list) || list.length === 0 || list.length > POLICY_LIMITS.maxAddresses)
    fail(`${name} takes 1 to ${POLICY_LIMITS.maxAddresses} addresses`, { condition: name })
  const out: string[] = []
  for (const a of list as unknown[]) {
    if (typeof a !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(a))
      fail(`${name} entry is not an address`, { condition: name, value: String(a) })
    let checksummed = ''
    try {
      checksummed = normalizeAddress(a as string)
    } catch {
      fail(`${name} entry has a bad checksum`, { condition: name, value: a })
    }
    if (out.includes(checksummed))
      fail(`${name} lists an address twice`, { condition: name, value: checksummed })
    out.push(checksummed)
  }
  return out
}

/** 9999-12-31T23:59:59Z: the last instant an ISO 8601 date without an expanded year can name. */
const MAX_TIMESTAMP = 253_402_300_799

function toTimestamp(value: unknown, name: string): number {
  let seconds: number
  if (value instanceof Date) seconds = value.getTime() / 1000
  else if (typeof value === 'string') {
    if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/.test(value))
      fail(`${name} takes an ISO 8601 date or unix seconds`, { condition: name, value })
    seconds = Date.parse(value) / 1000
  } else if (typeof value === 'number') seconds = value
  else return fail(`${name} takes a date`, { condition: name })
  if (!Number.isInteger(seconds))
    fail(`${name} must fall on a whole second`, { condition: name, value: String(value) })
  return checkInteger(seconds, name, 0, MAX_TIMESTAMP)
}

/** Executor reputation (NodeRegistry) at least `min`. */
export function minReputation(min: number): PolicyExpression {
  return {
    kind: 'minReputation',
    min: checkInteger(min, 'minReputation', 0, POLICY_LIMITS.maxReputation),
  }
}
/** Executor is one of `addresses`. */
export function allowlist(addresses: readonly string[]): PolicyExpression {
  return { kind: 'allowlist', addresses: checkAddresses(addresses, 'allowlist') }
}
/** Executor is none of `addresses`. */
export function denylist(addresses: readonly string[]): PolicyExpression {
  return { kind: 'denylist', addresses: checkAddresses(addresses, 'denylist') }
}
/** The executor declares exactly this environment measurement (bytes32, 0x + 64 hex). */
export function environment(measurement: string): PolicyExpression {
  if (!isHex(measurement, 32))
    fail('environment takes a bytes32 (0x + 64 hex digits)', {
      condition: 'environment',
      value: String(measurement),
    })
  return { kind: 'environment', measurement: measurement.toLowerCase() }
}
/** Not before `date` (Date, ISO 8601 string, or unix seconds). */
export function after(date: Date | string | number): PolicyExpression {
  return { kind: 'after', timestamp: toTimestamp(date, 'after') }
}
/** Strictly before `date` (Date, ISO 8601 string, or unix seconds). */
export function before(date: Date | string | number): PolicyExpression {
  return { kind: 'before', timestamp: toTimestamp(date, 'before') }
}
/** At most `runs` grants for the capsule, chain and fast path together. */
export function maxRuns(runs: number): PolicyExpression {
  return { kind: 'maxRuns', runs: checkInteger(runs, 'maxRuns', 1, POLICY_LIMITS.maxRuns) }
}
/** The requester pays at least `eth` (decimal ETH string, e.g. '0.01') into escrow. */
export function fee(eth: string): PolicyExpression {
  if (typeof eth !== 'string' || !/^\d{1,30}(\.\d{1,18})?$/.test(eth))
    fail("fee takes a decimal ETH amount such as '0.01'", { condition: 'fee', value: String(eth) })
  const wei = parseEther(eth)
  if (wei === 0n || wei >= 2n ** 128n)
    fail('fee must be above zero and below 2^128 wei', { condition: 'fee', value: eth })
  return { kind: 'fee', wei }
}
/**
 * The executor has a registered attestation key (NodeRegistry `attestationKeyHash` ≠ 0) on
 * chain, and — checked off chain by the keyguard before it releases a data key — the run's
 * ephemeral key appears in a valid "before" quote of that key (`@digicap/attestation`).
 * A rule that contains `attested()` anywhere makes the generated policy answer
 * `attestationRequired() = true`, which is how a keyguard knows to ask for the quote.
 */
export function attested(): PolicyExpression {
  return { kind: 'attested' }
}
/** Every condition holds (fails with the first failing condition's reason). */
export function all(...conditions: PolicyExpression[]): PolicyExpression {
  if (conditions.length === 0) fail('all() needs at least one condition', { condition: 'all' })
  return normalizePolicyExpression({ kind: 'all', conditions })
}
/** At least one condition holds (fails with the first condition's reason). */
export function any(...conditions: PolicyExpression[]): PolicyExpression {
  if (conditions.length === 0) fail('any() needs at least one condition', { condition: 'any' })
  return normalizePolicyExpression({ kind: 'any', conditions })
}
/** The condition does not hold. */
export function not(condition: PolicyExpression): PolicyExpression {
  return normalizePolicyExpression({ kind: 'not', condition })
}

/**
 * Checks an expression built by hand or read back from JSON and returns it normalised
 * (checksummed addresses, lower-case measurements).
 *
 * @throws {PolicyExpressionError} on any malformed node or exceeded limit.
 */
export function normalizePolicyExpression(expr: unknown): PolicyExpression {
  let nodes = 0
  const walk = (e: unknown, depth: number): PolicyExpression => {
    if (++nodes > POLICY_LIMITS.maxNodes)
      fail(`a rule has at most ${POLICY_LIMITS.maxNodes} conditions`)
    if (depth > POLICY_LIMITS.maxDepth) fail(`a rule nests at most ${POLICY_LIMITS.maxDepth} deep`)
    if (typeof e !== 'object' || e === null) return fail('a condition must be an object')
    const node = e as Record<string, unknown>
    switch (node.kind) {
      case 'minReputation':
        return minReputation(node.min as number)
      case 'allowlist':
        return allowlist(node.addresses as string[])
      case 'denylist':
        return denylist(node.addresses as string[])
      case 'environment':
        return environment(node.measurement as string)
      case 'after':
        return after(node.timestamp as number)
      case 'before':
        return before(node.timestamp as number)
      case 'maxRuns':
        return maxRuns(node.runs as number)
      case 'attested':
        if (Object.keys(node).length !== 1)
          fail('attested() takes no argument', { condition: 'attested' })
        return attested()
      case 'fee': {
        if (typeof node.wei !== 'bigint' || node.wei <= 0n || node.wei >= 2n ** 128n)
          fail('fee must be a positive bigint of wei below 2^128', { condition: 'fee' })
        return { kind: 'fee', wei: node.wei as bigint }
      }
      case 'all':
      case 'any': {
        const list = node.conditions
        if (!Array.isArray(list) || list.length === 0)
          fail(`${node.kind}() needs at least one condition`, { condition: node.kind })
        return { kind: node.kind, conditions: (list as unknown[]).map((c) => walk(c, depth + 1)) }
      }
      case 'not':
        return { kind: 'not', condition: walk(node.condition, depth + 1) }
      default:
        return fail('unknown condition', { condition: String(node.kind) })
    }
  }
  return walk(expr, 0)
}

function isoDate(seconds: number): string {
  return new Date(seconds * 1000).toISOString()
}

/**
 * The canonical text of a rule; `parsePolicyExpression(formatPolicyExpression(e))` gives `e` back.
 *
 * @example
 * ```ts
 * formatPolicyExpression(all(minReputation(50), maxRuns(3))) // "all(minReputation(50), maxRuns(3))"
 * ```
 */
export function formatPolicyExpression(expr: PolicyExpression): string {
  switch (expr.kind) {
    case 'minReputation':
      return `minReputation(${expr.min})`
    case 'allowlist':
    case 'denylist':
      return `${expr.kind}([${expr.addresses.map((a) => `'${a}'`).join(', ')}])`
    case 'environment':
      return `environment('${expr.measurement}')`
    case 'after':
    case 'before':
      return `${expr.kind}('${isoDate(expr.timestamp)}')`
    case 'maxRuns':
      return `maxRuns(${expr.runs})`
    case 'attested':
      return 'attested()'
    case 'fee': {
      const eth = formatEther(expr.wei)
      return `fee('${eth.endsWith('.0') ? eth.slice(0, -2) : eth}')`
    }
    case 'all':
    case 'any':
      return `${expr.kind}(${expr.conditions.map(formatPolicyExpression).join(', ')})`
    case 'not':
      return `not(${formatPolicyExpression(expr.condition)})`
  }
}
