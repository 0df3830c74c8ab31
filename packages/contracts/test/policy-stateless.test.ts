/**
 * A generated policy keeps no state of its own (ADR 0091): one deployment can serve any number
 * of capsules, and an older deployment of an expression behaves exactly as a fresh one. That is
 * why the owner's policy check binds an address to the expression's code (ADR 0048's
 * amendment) and not to one deployment: a lying RPC that points a seal or a move at an older
 * deployment of the same expression changes nothing.
 *
 * - Runs count per capsule, in the registry (`CapsuleRegistry.recordRun`), handed to the
 *   policy as `request.runCount`: `maxRuns` reads it, it counts nothing itself.
 * - The generated code has no storage or state-changing opcode at all (scanned below), and the
 *   controller calls `evaluate` through a view interface (STATICCALL): even a hand-written
 *   policy that tries to count in its own storage cannot (POLICY_ERROR).
 */
import { ZeroHash } from 'ethers'
import { describe, expect, it } from 'vitest'
import { compilePolicy, deployPolicy } from '../src/compiler/policy.ts'
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
} from '../src/policy/expression.ts'
import { generatePolicySource } from '../src/policy/solidity.ts'
import { Reason } from '../src/reasons.ts'
import { COUNTING_POLICY } from './fixtures/policies.ts'
import { bytes32, CID, peerId, send, useWorld, type World } from './helpers.ts'

let w: World
useWorld((world) => {
  w = world
})

/** Registers a new capsule of `w.owner` under the deployed `policy`. */
async function capsuleUnder(policy: string): Promise<string> {
  const capsuleId = bytes32()
  await send(
    w.c.capsuleRegistry
      .connect(w.owner)
      .register(capsuleId, policy, CID, bytes32(), peerId(), bytes32()),
  )
  return capsuleId
}

/** What the controller answers for `capsuleId` now: [allowed, reason]. */
async function check(capsuleId: string): Promise<[boolean, number]> {
  const r = await w.c.accessController.checkAccess(
    capsuleId,
    w.executor.address,
    bytes32(),
    ZeroHash,
    0,
    false,
    '0x',
  )
  return [r.allowed, Number(r.reason)]
}

const run = (capsuleId: string) =>
  send(w.c.accessController.connect(w.executor).requestAccess(capsuleId, bytes32(), ZeroHash, '0x'))

/**
 * The opcodes of EVM runtime code, PUSH data skipped, solc's CBOR metadata trailer (its length
 * in the last two bytes) left out.
 */
function opcodes(runtimeHex: string): number[] {
  const code = Buffer.from(runtimeHex.slice(2), 'hex')
  const metadata = code.readUInt16BE(code.length - 2) + 2
  const ops: number[] = []
  for (let i = 0; i < code.length - metadata; i++) {
    const op = code[i] as number
    ops.push(op)
    if (op >= 0x60 && op <= 0x7f) i += op - 0x5f
  }
  return ops
}

/** Opcodes that read or write the contract's own state, or change any state. */
const STATEFUL: Record<number, string> = {
  84: 'SLOAD',
  85: 'SSTORE',
  92: 'TLOAD',
  93: 'TSTORE',
  160: 'LOG0',
  161: 'LOG1',
  162: 'LOG2',
  163: 'LOG3',
  164: 'LOG4',
  240: 'CREATE',
  241: 'CALL',
  242: 'CALLCODE',
  244: 'DELEGATECALL',
  245: 'CREATE2',
  255: 'SELFDESTRUCT',
}
const statefulOps = (runtimeHex: string) =>
  [...new Set(opcodes(runtimeHex).filter((op) => op in STATEFUL))].map((op) => STATEFUL[op])

describe('a policy deployment keeps no state', () => {
  it('two capsules on one deployment do not affect each other: runs count per capsule', async () => {
    const p = await deployPolicy(w.owner, maxRuns(1), { nodeRegistry: w.addresses.nodeRegistry })
    const [a, b] = [await capsuleUnder(p.address), await capsuleUnder(p.address)]
    const code = await w.anvil.provider.getCode(p.address)
    await run(a)
    expect(await check(a)).toEqual([false, Reason.MAX_RUNS_REACHED])
    expect(await check(b)).toEqual([true, Reason.OK]) // a's run is not b's
    await run(b)
    expect(await check(b)).toEqual([false, Reason.MAX_RUNS_REACHED])
    expect(await w.c.accessController.runCount(a)).toBe(1n)
    expect(await w.c.accessController.runCount(b)).toBe(1n)
    // nothing about the deployment changed: same code, and its storage is empty
    expect(await w.anvil.provider.getCode(p.address)).toBe(code)
    expect(await w.anvil.provider.getStorage(p.address, 0)).toBe(ZeroHash)
  })

  it('an older, used deployment of an expression answers a new capsule as a fresh one does', async () => {
    const rule = all(minReputation(1), maxRuns(2))
    const older = await deployPolicy(w.owner, rule, { nodeRegistry: w.addresses.nodeRegistry })
    const used = await capsuleUnder(older.address)
    await run(used)
    await run(used)
    expect(await check(used)).toEqual([false, Reason.MAX_RUNS_REACHED])
    const fresh = await deployPolicy(w.owner, rule, {
      nodeRegistry: w.addresses.nodeRegistry,
      compiled: older.compiled,
    })
    // What the owner's code check sees: the same runtime code at both addresses.
    expect(await w.anvil.provider.getCode(older.address)).toBe(
      await w.anvil.provider.getCode(fresh.address),
    )
    const [onOlder, onFresh] = [
      await capsuleUnder(older.address),
      await capsuleUnder(fresh.address),
    ]
    for (let i = 0; i < 2; i++) {
      expect(await check(onOlder)).toEqual(await check(onFresh))
      expect(await check(onOlder)).toEqual([true, Reason.OK])
      await run(onOlder)
      await run(onFresh)
    }
    expect(await check(onOlder)).toEqual([false, Reason.MAX_RUNS_REACHED])
    expect(await check(onFresh)).toEqual([false, Reason.MAX_RUNS_REACHED])
  })

  it('generated code has no storage or state-changing opcode, for every condition', () => {
    const t = 1_900_000_000
    const rule = all(
      minReputation(1),
      attested(),
      allowlist([w.executor.address]),
      denylist([w.other.address]),
      environment(ZeroHash),
      any(after(t), before(t)),
      not(maxRuns(3)),
      fee('0.01'),
    )
    const compiled = compilePolicy(generatePolicySource(rule))
    expect(opcodes(compiled.deployedBytecode)).toContain(0xfa) // STATICCALL: the scan reads code
    expect(statefulOps(compiled.deployedBytecode)).toEqual([])
    // and the scan finds state where there is some
    const counting = compilePolicy(COUNTING_POLICY, { contractName: 'Counting' })
    expect(statefulOps(counting.deployedBytecode)).toEqual(
      expect.arrayContaining(['SLOAD', 'SSTORE']),
    )
  })

  it('a policy that counts in its own storage cannot: the controller’s view call refuses its write', async () => {
    const p = await deployPolicy(
      w.owner,
      { source: COUNTING_POLICY, contractName: 'Counting' },
      { nodeRegistry: w.addresses.nodeRegistry },
    )
    const capsuleId = await capsuleUnder(p.address)
    expect(await check(capsuleId)).toEqual([false, Reason.POLICY_ERROR])
    await expect(run(capsuleId)).rejects.toThrow()
    expect(await w.anvil.provider.getStorage(p.address, 0)).toBe(ZeroHash)
  })
})
