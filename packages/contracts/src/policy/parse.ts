import { PolicyExpressionError } from '../errors.ts'
import {
  after,
  all,
  allowlist,
  any,
  attested,
  before,
  denylist,
  environment,
  fee,
  maxRuns,
  minReputation,
  not,
  POLICY_LIMITS,
  type PolicyExpression,
} from './expression.ts'

type Token =
  | { type: 'ident'; value: string; pos: number }
  | { type: 'number'; value: string; pos: number }
  | { type: 'string'; value: string; pos: number }
  | { type: 'punct'; value: '(' | ')' | '[' | ']' | ','; pos: number }
  | { type: 'end'; pos: number }

type Arg =
  | { type: 'call'; expr: PolicyExpression; pos: number }
  | { type: 'number'; value: string; pos: number }
  | { type: 'string'; value: string; pos: number }
  | { type: 'list'; items: string[]; pos: number }

const syntax = (message: string, pos: number, expected?: string): never => {
  throw new PolicyExpressionError(message, {
    details: expected === undefined ? { position: pos } : { position: pos, expected },
  })
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < text.length) {
    const ch = text[i]!
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      i++
    } else if ('()[],'.includes(ch)) {
      tokens.push({ type: 'punct', value: ch as '(' | ')' | '[' | ']' | ',', pos: i })
      i++
    } else if (/[A-Za-z_]/.test(ch)) {
      const start = i
      while (i < text.length && /[A-Za-z0-9_]/.test(text[i]!)) i++
      tokens.push({ type: 'ident', value: text.slice(start, i), pos: start })
    } else if (/[0-9]/.test(ch)) {
      const start = i
      while (i < text.length && /[0-9.]/.test(text[i]!)) i++
      if (i < text.length && /[A-Za-z_]/.test(text[i]!)) syntax('unexpected character in number', i)
      tokens.push({ type: 'number', value: text.slice(start, i), pos: start })
    } else if (ch === "'" || ch === '"') {
      const start = i
      const end = text.indexOf(ch, i + 1)
      if (end < 0) syntax('unterminated string', start, ch)
      const value = text.slice(i + 1, end)
      if (/[\\\n\r]/.test(value))
        syntax('strings may not contain backslashes or line breaks', start)
      tokens.push({ type: 'string', value, pos: start })
      i = end + 1
    } else {
      syntax(`unexpected character ${JSON.stringify(ch)}`, i)
    }
  }
  tokens.push({ type: 'end', pos: text.length })
  return tokens
}

const ARITY: Record<string, 'none' | 'one' | 'many'> = {
  minReputation: 'one',
  allowlist: 'one',
  denylist: 'one',
  environment: 'one',
  after: 'one',
  before: 'one',
  maxRuns: 'one',
  fee: 'one',
  attested: 'none',
  not: 'one',
  all: 'many',
  any: 'many',
}

/**
 * Parses the text form of a rule, e.g. `all(minReputation(50), maxRuns(3), fee('0.01'))`.
 *
 * Grammar: `expr := name '(' [arg (',' arg)*] ')'`; `arg := expr | integer | decimal | 'string'
 * | [ 'string' (',' 'string')* ]`. Dates are ISO 8601 strings (`'2027-01-01T00:00:00Z'`) or
 * unix seconds; fees are decimal ETH (`'0.01'` or `0.01`); addresses are quoted.
 *
 * @throws {PolicyExpressionError} with `details.position` (character offset) on malformed,
 *   truncated or oversized input, and on values the condition constructors reject.
 */
export function parsePolicyExpression(text: string): PolicyExpression {
  if (typeof text !== 'string') return syntax('policy text must be a string', 0)
  if (text.length > POLICY_LIMITS.maxTextLength)
    syntax(
      `policy text is longer than ${POLICY_LIMITS.maxTextLength} characters`,
      POLICY_LIMITS.maxTextLength,
    )
  const tokens = tokenize(text)
  let k = 0
  let nodes = 0
  const peek = (): Token => tokens[k]!
  const next = (): Token => tokens[k++]!
  const expect = (value: string): void => {
    const t = next()
    if (t.type !== 'punct' || t.value !== value)
      syntax(t.type === 'end' ? 'unexpected end of input' : 'unexpected token', t.pos, value)
  }

  const parseCall = (depth: number): PolicyExpression => {
    const t = next()
    if (t.type !== 'ident')
      return syntax(
        t.type === 'end' ? 'unexpected end of input' : 'expected a condition name',
        t.pos,
        'name',
      )
    const arity = ARITY[t.value]
    if (!arity)
      return syntax(
        `unknown condition ${JSON.stringify(t.value)}`,
        t.pos,
        Object.keys(ARITY).join('|'),
      )
    if (depth > POLICY_LIMITS.maxDepth)
      syntax(`a rule nests at most ${POLICY_LIMITS.maxDepth} deep`, t.pos)
    if (++nodes > POLICY_LIMITS.maxNodes)
      syntax(`a rule has at most ${POLICY_LIMITS.maxNodes} conditions`, t.pos)
    expect('(')
    const args: Arg[] = []
    const close = peek()
    if (!(close.type === 'punct' && close.value === ')')) {
      for (;;) {
        args.push(parseArg(depth))
        const sep = next()
        if (sep.type === 'punct' && sep.value === ')') break
        if (!(sep.type === 'punct' && sep.value === ','))
          syntax(
            sep.type === 'end' ? 'unexpected end of input' : 'unexpected token',
            sep.pos,
            "',' or ')'",
          )
      }
    } else {
      next()
    }
    if (arity === 'one' && args.length !== 1) syntax(`${t.value} takes exactly one argument`, t.pos)
    if (arity === 'none' && args.length !== 0) syntax(`${t.value} takes no argument`, t.pos)
    try {
      return build(t.value, args, t.pos)
    } catch (err) {
      if (err instanceof PolicyExpressionError && err.details.position === undefined)
        throw new PolicyExpressionError(err.shortMessage, {
          details: { ...err.details, position: t.pos },
          cause: err,
        })
      throw err
    }
  }

  const parseArg = (depth: number): Arg => {
    const t = peek()
    if (t.type === 'ident') return { type: 'call', expr: parseCall(depth + 1), pos: t.pos }
    if (t.type === 'number' || t.type === 'string') {
      next()
      return { type: t.type, value: t.value, pos: t.pos }
    }
    if (t.type === 'punct' && t.value === '[') {
      next()
      const items: string[] = []
      if (peek().type === 'punct' && (peek() as { value: string }).value === ']') {
        next()
        return { type: 'list', items, pos: t.pos }
      }
      for (;;) {
        const item = next()
        if (item.type !== 'string')
          syntax(
            item.type === 'end' ? 'unexpected end of input' : 'list items are quoted strings',
            item.pos,
            'string',
          )
        items.push((item as { value: string }).value)
        if (items.length > POLICY_LIMITS.maxAddresses) syntax('list is too long', item.pos)
        const sep = next()
        if (sep.type === 'punct' && sep.value === ']') break
        if (!(sep.type === 'punct' && sep.value === ','))
          syntax(
            sep.type === 'end' ? 'unexpected end of input' : 'unexpected token',
            sep.pos,
            "',' or ']'",
          )
      }
      return { type: 'list', items, pos: t.pos }
    }
    return syntax(
      t.type === 'end' ? 'unexpected end of input' : 'unexpected token',
      t.pos,
      'argument',
    )
  }

  const expr = parseCall(0)
  const rest = next()
  if (rest.type !== 'end') syntax('unexpected text after the rule', rest.pos)
  return expr
}

function build(name: string, args: Arg[], pos: number): PolicyExpression {
  const arg = args[0]
  const wrong = (want: string): never => syntax(`${name} takes ${want}`, arg?.pos ?? pos, want)
  const integer = (): number => {
    if (arg?.type !== 'number' || !/^\d{1,15}$/.test(arg.value)) return wrong('an integer')
    return Number(arg.value)
  }
  switch (name) {
    case 'minReputation':
      return minReputation(integer())
    case 'maxRuns':
      return maxRuns(integer())
    case 'allowlist':
    case 'denylist':
      if (arg?.type !== 'list') return wrong('a list of quoted addresses')
      return name === 'allowlist' ? allowlist(arg.items) : denylist(arg.items)
    case 'environment':
      if (arg?.type !== 'string') return wrong('a quoted bytes32')
      return environment(arg.value)
    case 'after':
    case 'before': {
      const when =
        arg?.type === 'string' ? arg.value : arg?.type === 'number' ? integer() : wrong('a date')
      return name === 'after' ? after(when) : before(when)
    }
    case 'fee':
      if (arg?.type !== 'string' && arg?.type !== 'number') return wrong('a decimal ETH amount')
      return fee(arg.value)
    case 'attested':
      return attested()
    case 'not':
      if (arg?.type !== 'call') return wrong('a condition')
      return not(arg.expr)
    default: {
      const conditions = args.map((a) =>
        a.type === 'call' ? a.expr : syntax(`${name} takes conditions`, a.pos, 'condition'),
      )
      if (conditions.length === 0) syntax(`${name}() needs at least one condition`, pos)
      return name === 'all' ? all(...conditions) : any(...conditions)
    }
  }
}
