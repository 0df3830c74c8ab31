import { getAddress, hexlify, parseEther, ZeroHash } from 'ethers'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compilePolicy } from '../src/compiler/policy.ts'
import { PolicyCompileError, PolicyExpressionError } from '../src/errors.ts'
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
  formatPolicyExpression,
  maxRuns,
  minReputation,
  normalizePolicyExpression,
  not,
  POLICY_LIMITS,
  type PolicyExpression,
} from '../src/policy/expression.ts'
import { parsePolicyExpression } from '../src/policy/parse.ts'
import { generatePolicySource } from '../src/policy/solidity.ts'

const A1 = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'
const A2 = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC'
const M = `0x${'ab'.repeat(32)}`

function expectPolicyError(fn: () => unknown, position?: number): PolicyExpressionError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  expect(caught).toBeInstanceOf(PolicyExpressionError)
  const e = caught as PolicyExpressionError
  expect(e.code).toBe('POLICY_EXPRESSION')
  if (position !== undefined) expect(e.details.position).toBe(position)
  return e
}

describe('condition constructors', () => {
  it('build normalised nodes', () => {
    expect(minReputation(50)).toEqual({ kind: 'minReputation', min: 50 })
    expect(allowlist([A1.toLowerCase()])).toEqual({ kind: 'allowlist', addresses: [A1] })
    expect(denylist([A2])).toEqual({ kind: 'denylist', addresses: [A2] })
    expect(environment(M.toUpperCase().replace('0X', '0x'))).toEqual({
      kind: 'environment',
      measurement: M,
    })
    expect(after('2027-01-01T00:00:00Z')).toEqual({ kind: 'after', timestamp: 1798761600 })
    expect(before(new Date('2027-01-01T00:00:00Z'))).toEqual({
      kind: 'before',
      timestamp: 1798761600,
    })
    expect(before('2027-01-01')).toEqual({ kind: 'before', timestamp: 1798761600 })
    expect(after(1798761600)).toEqual({ kind: 'after', timestamp: 1798761600 })
    expect(maxRuns(3)).toEqual({ kind: 'maxRuns', runs: 3 })
    expect(fee('0.01')).toEqual({ kind: 'fee', wei: parseEther('0.01') })
    expect(not(maxRuns(1))).toEqual({ kind: 'not', condition: { kind: 'maxRuns', runs: 1 } })
  })

  it('reject bad values with typed errors', () => {
    for (const bad of [
      () => minReputation(-1),
      () => minReputation(1001),
      () => minReputation(1.5),
      () => allowlist([]),
      () => allowlist(['0x1234']),
      () => allowlist([A1, A1.toLowerCase()]),
      () => allowlist([`0x70997970c51812dc3A010C7d01b50e0d17dc79C8`]),
      () =>
        allowlist(
          Array.from({ length: 65 }, (_, i) =>
            getAddress(`0x${(i + 1).toString(16).padStart(40, '0')}`),
          ),
        ),
      () => denylist(['not an address']),
      () => environment('0x1234'),
      () => environment(`0x${'zz'.repeat(32)}`),
      () => after('2027-01-01T00:00'),
      () => after('2027-13-45'),
      () => after('yesterday'),
      () => before(1.5),
      () => before(-1),
      () => before(253_402_300_800),
      () => maxRuns(0),
      () => maxRuns(2 ** 32),
      () => fee('0'),
      () => fee('-1'),
      () => fee('1e18'),
      () => fee('0.0000000000000000001'),
      () => all(),
      () => any(),
      () => normalizePolicyExpression({ kind: 'fee', wei: 0n }),
      () => normalizePolicyExpression({ kind: 'fee', wei: '1' }),
      () => normalizePolicyExpression({ kind: 'bogus' }),
      () => normalizePolicyExpression(null),
      () => normalizePolicyExpression({ kind: 'all', conditions: [] }),
      () => normalizePolicyExpression({ kind: 'not' }),
    ])
      expectPolicyError(bad)
  })

  it('bound nesting depth and size', () => {
    let deep: PolicyExpression = maxRuns(1)
    for (let i = 0; i < POLICY_LIMITS.maxDepth; i++) deep = { kind: 'not', condition: deep }
    expect(normalizePolicyExpression(deep)).toEqual(deep)
    expectPolicyError(() => normalizePolicyExpression({ kind: 'not', condition: deep }))
    const wide = {
      kind: 'all',
      conditions: Array.from({ length: POLICY_LIMITS.maxNodes }, () => maxRuns(1)),
    }
    expectPolicyError(() => normalizePolicyExpression(wide))
  })
})

describe('parsePolicyExpression', () => {
  it('parses the documented example and every condition', () => {
    expect(parsePolicyExpression("all(minReputation(50), maxRuns(3), fee('0.01'))")).toEqual(
      all(minReputation(50), maxRuns(3), fee('0.01')),
    )
    const text = `any(allowlist(['${A1}', "${A2}"]), not(denylist(['${A2}'])), environment('${M}'), after('2027-01-01T00:00:00Z'), before(1798761600), fee(0.5))`
    expect(parsePolicyExpression(text)).toEqual(
      any(
        allowlist([A1, A2]),
        not(denylist([A2])),
        environment(M),
        after(1798761600),
        before(1798761600),
        fee('0.5'),
      ),
    )
    expect(parsePolicyExpression('  maxRuns( 3 )\n')).toEqual(maxRuns(3))
  })

  it('parses, formats and normalises attested(), which takes no argument', () => {
    const rule = all(attested(), maxRuns(2))
    expect(parsePolicyExpression('all(attested(), maxRuns(2))')).toEqual(rule)
    expect(formatPolicyExpression(rule)).toBe('all(attested(), maxRuns(2))')
    expect(normalizePolicyExpression({ kind: 'attested' })).toEqual(attested())
    expectPolicyError(() => parsePolicyExpression('attested(1)'), 0)
    expect(() => normalizePolicyExpression({ kind: 'attested', min: 1 })).toThrow(
      PolicyExpressionError,
    )
    expect(generatePolicySource(rule)).toMatch(/attestationKeyHash == bytes32\(0\)/)
  })

  it('reports malformed input with its position', () => {
    const cases: [string, number][] = [
      ['', 0],
      ['all(', 4],
      ['all(maxRuns(3)', 14],
      ['all(maxRuns(3)))', 15],
      ['bogus(1)', 0],
      ['maxRuns(3', 9],
      ['maxRuns(3,4)', 0],
      ['maxRuns()', 0],
      ["maxRuns('3')", 8],
      ['maxRuns(3x)', 9],
      ['maxRuns(1.5)', 8],
      ["fee('abc')", 0],
      ["environment('0x12')", 0],
      ["allowlist('0x12')", 10],
      ['allowlist([1])', 11],
      ["allowlist(['a',])", 15],
      ['all(1)', 4],
      ['not(1)', 4],
      ["before('x\\y')", 7],
      ["before('unterminated)", 7],
      ['maxRuns(3) maxRuns(3)', 11],
      ['maxRuns#(3)', 7],
      ['all()', 0],
      ['allowlist([])', 0],
    ]
    for (const [text, position] of cases)
      expectPolicyError(() => parsePolicyExpression(text), position)
  })

  it('rejects oversized and too deeply nested text', () => {
    expectPolicyError(
      () => parsePolicyExpression(`all(${'maxRuns(1), '.repeat(2000)}maxRuns(1))`),
      POLICY_LIMITS.maxTextLength,
    )
    const deep = `${'not('.repeat(POLICY_LIMITS.maxDepth + 1)}maxRuns(1)${')'.repeat(POLICY_LIMITS.maxDepth + 1)}`
    expectPolicyError(() => parsePolicyExpression(deep))
    const wide = `all(${Array.from({ length: POLICY_LIMITS.maxNodes }, () => 'maxRuns(1)').join(',')})`
    expectPolicyError(() => parsePolicyExpression(wide))
    expectPolicyError(() => parsePolicyExpression(42 as unknown as string), 0)
  })

  const address = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => getAddress(hexlify(b)))
  const leaf: fc.Arbitrary<PolicyExpression> = fc.oneof(
    fc.integer({ min: 0, max: 1000 }).map(minReputation),
    fc.uniqueArray(address, { minLength: 1, maxLength: 4 }).map(allowlist),
    fc.uniqueArray(address, { minLength: 1, maxLength: 4 }).map(denylist),
    fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => environment(hexlify(b))),
    fc.integer({ min: 0, max: 253_402_300_799 }).map(after),
    fc.integer({ min: 0, max: 253_402_300_799 }).map(before),
    fc.integer({ min: 1, max: 2 ** 32 - 1 }).map(maxRuns),
    fc
      .bigInt({ min: 1n, max: 2n ** 100n })
      .map((wei) => ({ kind: 'fee', wei }) as PolicyExpression),
  )
  const expr = fc
    .letrec<{ e: PolicyExpression }>((tie) => ({
      e: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        leaf,
        fc
          .array(tie('e'), { minLength: 1, maxLength: 3 })
          .map((cs) => ({ kind: 'all', conditions: cs }) as PolicyExpression),
        fc
          .array(tie('e'), { minLength: 1, maxLength: 3 })
          .map((cs) => ({ kind: 'any', conditions: cs }) as PolicyExpression),
        tie('e').map((c) => ({ kind: 'not', condition: c }) as PolicyExpression),
      ),
    }))
    .e.filter((e) => {
      try {
        normalizePolicyExpression(e)
        return true
      } catch {
        return false
      }
    })

  it('round-trips every expression through its canonical text (fast-check)', () => {
    fc.assert(
      fc.property(expr, (e) => {
        const text = formatPolicyExpression(e)
        expect(parsePolicyExpression(text)).toEqual(normalizePolicyExpression(e))
        expect(formatPolicyExpression(parsePolicyExpression(text))).toBe(text)
      }),
      { numRuns: 300 },
    )
  })

  it('fails every truncation of a valid rule with PolicyExpressionError (fast-check)', () => {
    fc.assert(
      fc.property(expr, fc.nat(), (e, cut) => {
        const text = formatPolicyExpression(e)
        const at = cut % text.length
        expectPolicyError(() => parsePolicyExpression(text.slice(0, at)))
      }),
      { numRuns: 300 },
    )
  })

  it('never throws anything but PolicyExpressionError on arbitrary or mutated text (fast-check)', () => {
    const alphabet = fc.constantFrom(
      ...'allanynotmaxRunsfeeminReputation()[],\'" 0123456789.xabcdefABCDEF#\\\n'.split(''),
    )
    const mutated = fc
      .tuple(expr, fc.nat(), fc.string({ unit: alphabet, maxLength: 3 }))
      .map(([e, at, insert]) => {
        const t = formatPolicyExpression(e)
        const i = at % (t.length + 1)
        return t.slice(0, i) + insert + t.slice(i + 1)
      })
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: alphabet, maxLength: 80 }), mutated),
        (text) => {
          try {
            parsePolicyExpression(text)
          } catch (err) {
            expect(err).toBeInstanceOf(PolicyExpressionError)
          }
        },
      ),
      { numRuns: 1000 },
    )
  })
})

describe('generatePolicySource and compilePolicy', () => {
  const rule = all(
    minReputation(50),
    environment(M),
    before('2027-01-01T00:00:00Z'),
    maxRuns(3),
    fee('0.01'),
  )

  it('is deterministic and readable', () => {
    const a = generatePolicySource(rule)
    expect(generatePolicySource(parsePolicyExpression(formatPolicyExpression(rule)))).toBe(a)
    expect(a).toContain(`// Rule: ${formatPolicyExpression(rule)}`)
    expect(a).toContain(
      'if (nodeRegistry.reputationOf(executor) < 50) return (false, Reason.REPUTATION_TOO_LOW);',
    )
    expect(a).toContain('if (block.timestamp >= 1798761600) return (false, Reason.TOO_LATE);')
    expect(a).toContain(
      'if (request.feePaid < 10000000000000000) return (false, Reason.FEE_TOO_LOW);',
    )
    expect(a).toContain('pragma solidity 0.8.37;')
  })

  it('compiles every condition alone (no warnings), including zero and leading-zero measurements', () => {
    const leaves = [
      minReputation(0),
      allowlist([A1, A2]),
      denylist([A1]),
      environment(ZeroHash),
      environment(`0x${'00'.repeat(31)}01`),
      after(0),
      before(253_402_300_799),
      maxRuns(1),
      fee('0.000000000000000001'),
      not(fee('1')),
      any(maxRuns(1), before(5)),
    ]
    const source = generatePolicySource(all(...leaves))
    const compiled = compilePolicy(source)
    expect(compiled.bytecode).toMatch(/^0x[0-9a-f]+$/)
    for (const leaf of leaves)
      expect(compilePolicy(generatePolicySource(leaf)).abi.length).toBeGreaterThan(0)
  })

  it('reports solc errors and missing contracts as PolicyCompileError', () => {
    const bad = (fn: () => unknown) => {
      try {
        fn()
        expect.unreachable('should have thrown')
      } catch (err) {
        expect(err).toBeInstanceOf(PolicyCompileError)
        expect((err as PolicyCompileError).code).toBe('POLICY_COMPILE')
        return err as PolicyCompileError
      }
    }
    const e = bad(() => compilePolicy('contract X { function f( }'))
    expect(String(e.details.errors)).toMatch(/ParserError/)
    bad(() => compilePolicy(generatePolicySource(maxRuns(1)), { contractName: 'Other' }))
    bad(() =>
      compilePolicy(
        '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\ncontract DigicapPolicy {}',
      ),
    )
    const warn = bad(() =>
      compilePolicy(
        '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\ncontract DigicapPolicy { function evaluate() external pure { uint256 x = 1; } }',
      ),
    )
    expect(String(warn.details.errors)).toMatch(/Warning/)
  })
})
