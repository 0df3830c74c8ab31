import { formatEther } from './ether.ts'
import {
  formatPolicyExpression,
  normalizePolicyExpression,
  type PolicyExpression,
} from './expression.ts'

/** Bumped whenever the generated Solidity changes for the same rule. */
export const POLICY_GENERATOR_VERSION = 1

/** Name of the contract `generatePolicySource` emits. */
export const GENERATED_POLICY_CONTRACT = 'DigicapPolicy'

interface Usage {
  executor: boolean
  request: boolean
  view: boolean
}

function usage(e: PolicyExpression): Usage {
  switch (e.kind) {
    case 'minReputation':
    case 'attested':
      return { executor: true, request: false, view: true }
    case 'allowlist':
    case 'denylist':
      return { executor: true, request: false, view: false }
    case 'after':
    case 'before':
      return { executor: false, request: false, view: true }
    case 'environment':
    case 'maxRuns':
    case 'fee':
      return { executor: false, request: true, view: false }
    case 'not':
      return usage(e.condition)
    case 'all':
    case 'any':
      return e.conditions.map(usage).reduce((a, b) => ({
        executor: a.executor || b.executor,
        request: a.request || b.request,
        view: a.view || b.view,
      }))
  }
}

/** Parameters of a private condition function: only what it reads, so solc has nothing unused to warn about. */
const params = (u: Usage): string =>
  [u.executor ? 'address executor' : '', u.request ? 'AccessRequest calldata request' : '']
    .filter(Boolean)
    .join(', ')
const args = (u: Usage): string =>
  [u.executor ? 'executor' : '', u.request ? 'request' : ''].filter(Boolean).join(', ')
const mutability = (u: Usage): string => (u.view ? 'view' : 'pure')

/** Comment text for a rule: the canonical form, kept on one line and free of comment terminators. */
const commentOf = (e: PolicyExpression): string => formatPolicyExpression(e).replace(/\*\//g, '* /')

/**
 * Generates a readable Solidity contract implementing `IAccessPolicy` for `expr`. The output is
 * deterministic: the same rule always gives the same bytes, so anyone can re-compile it and
 * compare bytecode. Each condition becomes one private function, numbered in pre-order.
 *
 * @throws {PolicyExpressionError} when `expr` is malformed.
 *
 * @example
 * ```ts
 * const source = generatePolicySource(all(minReputation(50), maxRuns(3)))
 * ```
 */
export function generatePolicySource(expr: PolicyExpression): string {
  const root = normalizePolicyExpression(expr)
  const functions: string[] = []
  let counter = 0

  const emit = (e: PolicyExpression): string => {
    const name = `_c${counter++}`
    const u = usage(e)
    const body: string[] = []
    switch (e.kind) {
      case 'minReputation':
        body.push(
          `if (nodeRegistry.reputationOf(executor) < ${e.min}) return (false, Reason.REPUTATION_TOO_LOW);`,
          'return (true, Reason.OK);',
        )
        break
      case 'attested':
        body.push(
          'if (nodeRegistry.getNode(executor).attestationKeyHash == bytes32(0)) return (false, Reason.NOT_ATTESTED);',
          'return (true, Reason.OK);',
        )
        break
      case 'allowlist':
        for (const a of e.addresses) body.push(`if (executor == ${a}) return (true, Reason.OK);`)
        body.push('return (false, Reason.NOT_ALLOWLISTED);')
        break
      case 'denylist':
        for (const a of e.addresses)
          body.push(`if (executor == ${a}) return (false, Reason.DENYLISTED);`)
        body.push('return (true, Reason.OK);')
        break
      case 'environment':
        body.push(
          `if (request.measurement != bytes32(${e.measurement})) return (false, Reason.WRONG_ENVIRONMENT);`,
          'return (true, Reason.OK);',
        )
        break
      case 'after':
        body.push(
          `// ${new Date(e.timestamp * 1000).toISOString()}`,
          `if (block.timestamp < ${e.timestamp}) return (false, Reason.TOO_EARLY);`,
          'return (true, Reason.OK);',
        )
        break
      case 'before':
        body.push(
          `// ${new Date(e.timestamp * 1000).toISOString()}`,
          `if (block.timestamp >= ${e.timestamp}) return (false, Reason.TOO_LATE);`,
          'return (true, Reason.OK);',
        )
        break
      case 'maxRuns':
        body.push(
          `if (request.runCount >= ${e.runs}) return (false, Reason.MAX_RUNS_REACHED);`,
          'return (true, Reason.OK);',
        )
        break
      case 'fee':
        body.push(
          `// ${formatEther(e.wei)} ETH`,
          `if (request.feePaid < ${e.wei}) return (false, Reason.FEE_TOO_LOW);`,
          'return (true, Reason.OK);',
        )
        break
      case 'all': {
        body.push('bool ok;', 'uint8 reason;')
        for (const c of e.conditions) {
          body.push(
            `(ok, reason) = ${emit(c)}(${args(usage(c))});`,
            'if (!ok) return (false, reason);',
          )
        }
        body.push('return (true, Reason.OK);')
        break
      }
      case 'any': {
        body.push('bool ok;', 'uint8 reason;', 'uint8 first;')
        e.conditions.forEach((c, i) => {
          body.push(
            `(ok, reason) = ${emit(c)}(${args(usage(c))});`,
            'if (ok) return (true, Reason.OK);',
          )
          if (i === 0) body.push('first = reason;')
        })
        body.push('return (false, first);')
        break
      }
      case 'not': {
        const inner = emit(e.condition)
        body.push(
          `(bool ok,) = ${inner}(${args(usage(e.condition))});`,
          'if (ok) return (false, Reason.NEGATED_CONDITION_MET);',
          'return (true, Reason.OK);',
        )
        break
      }
    }
    functions.push(
      [
        `    /// ${commentOf(e)}`,
        `    function ${name}(${params(u)}) private ${mutability(u)} returns (bool, uint8) {`,
        ...body.map((l) => `        ${l}`),
        '    }',
      ].join('\n'),
    )
    return name
  }

  const rootUsage = usage(root)
  const rootName = emit(root)
  functions.sort((a, b) => fnIndex(a) - fnIndex(b))

  return `// SPDX-License-Identifier: Apache-2.0
// Generated by the @digicap/contracts policy builder (generator ${POLICY_GENERATOR_VERSION}). Do not edit:
// regenerate it from the rule below, then compare the bytecode with the deployed policy.
// Rule: ${commentOf(root)}
pragma solidity 0.8.37;

import {AccessRequest, IAccessPolicy} from "@digicap/contracts/policy/IAccessPolicy.sol";
import {Reason} from "@digicap/contracts/policy/Reason.sol";
import {INodeRegistry} from "@digicap/contracts/interfaces/INodeRegistry.sol";

/// @title ${GENERATED_POLICY_CONTRACT}
/// @notice Unlock rule: ${commentOf(root)}
contract ${GENERATED_POLICY_CONTRACT} is IAccessPolicy {
    /// @notice The registry reputation conditions read.
    INodeRegistry public immutable nodeRegistry;

    constructor(INodeRegistry nodeRegistry_) {
        nodeRegistry = nodeRegistry_;
    }

${
  requiresAttestation(root)
    ? `    /// @notice True: a keyguard releases only to an ephemeral key in a valid "before" TPM quote of
    ///         the executor's registered attestation key (checked off chain by the keyguard).
    function attestationRequired() external pure returns (bool) {
        return true;
    }

`
    : ''
}    /// @inheritdoc IAccessPolicy
    function evaluate(bytes32, address${rootUsage.executor ? ' executor' : ''}, AccessRequest calldata${rootUsage.request ? ' request' : ''}) external ${mutability(rootUsage)} returns (bool, uint8) {
        return ${rootName}(${args(rootUsage)});
    }

${functions.join('\n\n')}
}
`
}

/** True when `attested()` appears anywhere in the rule. */
export function requiresAttestation(e: PolicyExpression): boolean {
  switch (e.kind) {
    case 'attested':
      return true
    case 'not':
      return requiresAttestation(e.condition)
    case 'all':
    case 'any':
      return e.conditions.some(requiresAttestation)
    default:
      return false
  }
}

function fnIndex(fn: string): number {
  return Number(/function _c(\d+)\(/.exec(fn)?.[1] ?? 0)
}
