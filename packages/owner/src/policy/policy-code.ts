/**
 * What binds a policy address to a policy expression: the runtime code the expression compiles
 * to, read at the address through a quorum of RPCs. Shared by every owner path that names a
 * policy it deployed (`pi-node seal`'s header, `pi-node move-policy`'s `updatePolicy`), so that
 * one lying RPC (a receipt, a nonce) cannot make the owner name another contract (ADR 0048's
 * amendment, ADR 0091).
 */
import { hexToBytes, toHex } from '@digicap/capsule-core'
import {
  type CompiledPolicy,
  generatePolicySource,
  type JsonRpcQuorum,
  POLICY_SOURCE_NAME,
  PolicyCompileError,
  parsePolicyExpression,
} from '@digicap/contracts/light'
import { PolicyCodeError } from '../errors.ts'
import type { PolicyCompiler } from './types.ts'

/**
 * The generated source of `expression` and its compilation (`compile`, e.g. cached and in a
 * child process; else solc in this process), checked to be of that source.
 * @throws {PolicyExpressionError} | {@link PolicyCompileError}
 */
export async function compilePolicyExpression(
  expression: string,
  compile?: PolicyCompiler,
): Promise<{ source: string; compiled: CompiledPolicy }> {
  const source = generatePolicySource(parsePolicyExpression(expression))
  const compiled = compile
    ? await compile(source)
    : (await import('@digicap/contracts/compiler')).compilePolicy(source)
  if (compiled.sources[POLICY_SOURCE_NAME] !== source) {
    throw new PolicyCompileError('The compiled policy is not of this source', {
      details: { contractName: compiled.contractName },
    })
  }
  return { source, compiled }
}

/**
 * The runtime code `compiled` has once created with `nodeRegistry`: its runtime bytecode with
 * each immutable slot (the policy's only immutable is `nodeRegistry`) holding that address.
 */
export function expectedPolicyCode(compiled: CompiledPolicy, nodeRegistry: string): string {
  const code = hexToBytes(compiled.deployedBytecode)
  const word = new Uint8Array(32)
  word.set(hexToBytes(nodeRegistry, { length: 20, name: 'nodeRegistry' }), 12)
  for (const { start, length } of compiled.immutableReferences) {
    if (length !== 32 || start + 32 > code.length) {
      throw new PolicyCompileError('The compiled policy has an immutable it cannot fill', {
        details: { start, length },
      })
    }
    code.set(word, start)
  }
  return toHex(code)
}

/**
 * One quorum read: true when a quorum of `rpcs` reads `expected` at `address`, false when it
 * reads anything else (no code, another contract).
 * @throws {QuorumError} when the RPCs cannot be read or do not agree.
 */
export async function quorumReadsPolicyCode(
  rpcs: JsonRpcQuorum,
  address: string,
  expected: string,
): Promise<boolean> {
  const code = await rpcs.call('eth_getCode', [address.toLowerCase(), 'latest'])
  return typeof code === 'string' && code.toLowerCase() === expected.toLowerCase()
}

/**
 * Waits until a quorum of `rpcs` reads `expected` at `address`. An empty answer is "not yet"
 * (an RPC lagging behind the receipt); any other code is refused at once.
 * @throws {PolicyCodeError}
 */
export async function awaitPolicyCode(
  rpcs: JsonRpcQuorum,
  address: string,
  expected: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs
  let last: unknown
  for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
    try {
      const code = await rpcs.call('eth_getCode', [address.toLowerCase(), 'latest'])
      if (typeof code === 'string' && code.toLowerCase() === expected.toLowerCase()) return
      if (code !== '0x') {
        throw new PolicyCodeError('The contract the policy creation made is not this policy', {
          details: { address, bytes: typeof code === 'string' ? (code.length - 2) / 2 : 0 },
          hint: 'An RPC may lie about the nonce or the chain: check the RPCs in the config; no capsule was made to name it.',
        })
      }
      last = undefined
    } catch (err) {
      if (err instanceof PolicyCodeError) throw err
      last = err
    }
    if (performance.now() > deadline) {
      throw new PolicyCodeError('No quorum of RPCs shows the created policy', {
        cause: last,
        details: { address, rpcs: rpcs.names, quorum: rpcs.quorum, timeoutMs },
        hint: 'Its creation may not be on chain (an RPC lied about it, or it was dropped): no capsule was made to name it; run again.',
      })
    }
    await new Promise((r) => setTimeout(r, wait))
  }
}
