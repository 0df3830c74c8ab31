import { Contract, ContractFactory, parseEther, ZeroHash } from 'ethers'
import { describe, expect, it } from 'vitest'
import { compilePolicy, deployPolicy, verifyPolicyBytecode } from '../src/compiler/policy.ts'
import { connectPolicy } from '../src/deploy.ts'
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
  type PolicyExpression,
} from '../src/policy/expression.ts'
import { parsePolicyExpression } from '../src/policy/parse.ts'
import { generatePolicySource, requiresAttestation } from '../src/policy/solidity.ts'
import { Reason } from '../src/reasons.ts'
import { JOB_PARAMS_POLICY } from './fixtures/policies.ts'
import { bytes32, capsuleWith, send, useWorld, type World } from './helpers.ts'

let w: World
let t0: number
const M = bytes32()
useWorld(async (world) => {
  w = world
  t0 = (await w.anvil.provider.getBlock('latest'))!.timestamp
})

interface Req {
  measurement?: string
  feePaid?: bigint
  runCount?: bigint
  executor?: string
}

async function deploy(rule: PolicyExpression) {
  const p = await deployPolicy(w.owner, rule, { nodeRegistry: w.addresses.nodeRegistry })
  const policy = connectPolicy(p.address, w.anvil.provider)
  return async (r: Req = {}): Promise<[boolean, number]> => {
    const [ok, reason] = await policy.evaluate(bytes32(), r.executor ?? w.executor.address, {
      ephemeralKey: bytes32(),
      measurement: r.measurement ?? M,
      feePaid: r.feePaid ?? 0n,
      runCount: r.runCount ?? 0n,
      fastPath: false,
      jobParams: '0x',
    })
    return [ok, Number(reason)]
  }
}

const OK: [boolean, number] = [true, Reason.OK]
const NO = (reason: number): [boolean, number] => [false, reason]

describe('generated policies, one condition each', () => {
  it('minReputation reads the NodeRegistry (a new executor starts at 1: minReputation(50) refuses it)', async () => {
    expect(await (await deploy(minReputation(1)))()).toEqual(OK)
    expect(await (await deploy(minReputation(2)))()).toEqual(NO(Reason.REPUTATION_TOO_LOW))
    expect(await (await deploy(minReputation(50)))()).toEqual(NO(Reason.REPUTATION_TOO_LOW))
  })

  it('allowlist and denylist', async () => {
    const allow = await deploy(allowlist([w.other.address, w.executor.address]))
    expect(await allow()).toEqual(OK)
    expect(await allow({ executor: w.deployer.address })).toEqual(NO(Reason.NOT_ALLOWLISTED))
    const deny = await deploy(denylist([w.executor.address]))
    expect(await deny()).toEqual(NO(Reason.DENYLISTED))
    expect(await deny({ executor: w.other.address })).toEqual(OK)
  })

  it('attested() needs a registered attestation key; the policy says attestationRequired', async () => {
    const rule = all(attested(), maxRuns(5))
    const p = await deployPolicy(w.owner, rule, { nodeRegistry: w.addresses.nodeRegistry })
    const check = await deploy(rule)
    expect(await check()).toEqual(OK) // registered with a non-zero attestationKeyHash
    // a registered executor without one, and an address that is not registered at all
    const node = await w.c.nodeRegistry.getNode(w.executor.address)
    await send(w.c.nodeRegistry.connect(w.executor).update(node.peerId, ZeroHash, node.roles))
    try {
      expect(await check()).toEqual(NO(Reason.NOT_ATTESTED))
      expect(await check({ executor: w.other.address })).toEqual(NO(Reason.NOT_ATTESTED))
    } finally {
      await send(
        w.c.nodeRegistry
          .connect(w.executor)
          .update(node.peerId, node.attestationKeyHash, node.roles),
      )
    }
    const required = new Contract(
      p.address,
      ['function attestationRequired() view returns (bool)'],
      w.anvil.provider,
    )
    expect(await required.getFunction('attestationRequired')()).toBe(true)
    expect(requiresAttestation(rule)).toBe(true)
    expect(requiresAttestation(not(attested()))).toBe(true)
    expect(requiresAttestation(maxRuns(5))).toBe(false)
    // a rule without attested() has no such function: a keyguard reads that as "not required"
    const plain = await deployPolicy(w.owner, maxRuns(5), {
      nodeRegistry: w.addresses.nodeRegistry,
    })
    const none = new Contract(
      plain.address,
      ['function attestationRequired() view returns (bool)'],
      w.anvil.provider,
    )
    await expect(none.getFunction('attestationRequired')()).rejects.toThrow()
    expect(generatePolicySource(maxRuns(5))).not.toMatch(/attestationRequired/)
  })

  it('environment', async () => {
    const env = await deploy(environment(M))
    expect(await env()).toEqual(OK)
    expect(await env({ measurement: ZeroHash })).toEqual(NO(Reason.WRONG_ENVIRONMENT))
  })

  it('after and before follow the chain clock', async () => {
    const a = await deploy(after(t0 + 1000))
    const b = await deploy(before(t0 + 1000))
    expect(await a()).toEqual(NO(Reason.TOO_EARLY))
    expect(await b()).toEqual(OK)
    await w.anvil.increaseTime(2000)
    expect(await a()).toEqual(OK)
    expect(await b()).toEqual(NO(Reason.TOO_LATE))
  })

  it('maxRuns and fee', async () => {
    const runs = await deploy(maxRuns(3))
    expect(await runs({ runCount: 2n })).toEqual(OK)
    expect(await runs({ runCount: 3n })).toEqual(NO(Reason.MAX_RUNS_REACHED))
    const f = await deploy(fee('0.01'))
    expect(await f({ feePaid: parseEther('0.01') })).toEqual(OK)
    expect(await f({ feePaid: parseEther('0.01') - 1n })).toEqual(NO(Reason.FEE_TOO_LOW))
  })
})

describe('generated policies, combinations', () => {
  it('all() fails with the first failing condition', async () => {
    const p = await deploy(all(environment(M), maxRuns(2), fee('1')))
    expect(await p({ feePaid: parseEther('1') })).toEqual(OK)
    expect(await p({ measurement: ZeroHash, runCount: 5n })).toEqual(NO(Reason.WRONG_ENVIRONMENT))
    expect(await p({ runCount: 5n })).toEqual(NO(Reason.MAX_RUNS_REACHED))
    expect(await p()).toEqual(NO(Reason.FEE_TOO_LOW))
  })

  it('any() passes when one branch does and fails with the first branch reason', async () => {
    const p = await deploy(any(allowlist([w.other.address]), fee('1')))
    expect(await p({ executor: w.other.address })).toEqual(OK)
    expect(await p({ feePaid: parseEther('1') })).toEqual(OK)
    expect(await p()).toEqual(NO(Reason.NOT_ALLOWLISTED))
  })

  it('not() inverts and reports NEGATED_CONDITION_MET', async () => {
    const p = await deploy(not(allowlist([w.executor.address])))
    expect(await p()).toEqual(NO(Reason.NEGATED_CONDITION_MET))
    expect(await p({ executor: w.other.address })).toEqual(OK)
  })

  it('nested: any(all(minReputation, environment), not(maxRuns)) and the 5-condition rule', async () => {
    const p = await deploy(any(all(minReputation(1), environment(M)), not(maxRuns(10))))
    expect(await p()).toEqual(OK)
    expect(await p({ measurement: ZeroHash })).toEqual(NO(Reason.WRONG_ENVIRONMENT))
    expect(await p({ measurement: ZeroHash, runCount: 10n })).toEqual(OK)
    const five = await deploy(
      parsePolicyExpression(
        `all(minReputation(1), environment('${M}'), before(${t0 + 3600}), maxRuns(3), fee('0.01'))`,
      ),
    )
    expect(await five({ feePaid: parseEther('0.01') })).toEqual(OK)
    expect(await five({ feePaid: parseEther('0.01'), runCount: 3n })).toEqual(
      NO(Reason.MAX_RUNS_REACHED),
    )
  })

  it('gives the controller the same answer as eth_call on the policy, and grants through it', async () => {
    const rule = all(minReputation(1), environment(M), maxRuns(1))
    const { capsuleId, policy } = await capsuleWith(w, rule)
    const ac = w.c.accessController.connect(w.executor)
    const direct = connectPolicy(policy, w.anvil.provider)
    const req = {
      ephemeralKey: bytes32(),
      measurement: M,
      feePaid: 0n,
      runCount: 0n,
      fastPath: false,
      jobParams: '0x',
    }
    const [ok, reason] = await direct.evaluate(capsuleId, w.executor.address, req)
    const viaController = await ac.checkAccess(
      capsuleId,
      w.executor.address,
      req.ephemeralKey,
      M,
      0,
      false,
      '0x',
    )
    expect([viaController.allowed, viaController.reason]).toEqual([ok, reason])
    await send(ac.requestAccess(capsuleId, req.ephemeralKey, M, '0x'))
    const again = await ac.checkAccess(
      capsuleId,
      w.executor.address,
      req.ephemeralKey,
      M,
      0,
      false,
      '0x',
    )
    expect([...again]).toEqual([false, BigInt(Reason.MAX_RUNS_REACHED)])
  })
})

describe('reproducible policy builds', () => {
  it('re-compiling the kept source reproduces the deployed bytecode', async () => {
    const rule = all(minReputation(50), environment(M), maxRuns(3), fee('0.01'))
    const deployed = await deployPolicy(w.owner, rule, { nodeRegistry: w.addresses.nodeRegistry })
    expect(deployed.source).toBe(generatePolicySource(rule))
    const rebuilt = compilePolicy(deployed.source)
    expect(rebuilt.bytecode).toBe(deployed.compiled.bytecode)
    expect(rebuilt.metadata).toBe(deployed.compiled.metadata)
    const meta = JSON.parse(rebuilt.metadata) as {
      compiler: { version: string }
      settings: { optimizer: unknown }
    }
    expect(meta.compiler.version).toBe('0.8.37+commit.f401782d')
    expect(rebuilt.immutableReferences.length).toBeGreaterThan(0)
    expect(await verifyPolicyBytecode(w.anvil.provider, deployed.address, rebuilt)).toBe(true)
    const other = compilePolicy(
      generatePolicySource(all(minReputation(51), environment(M), maxRuns(3), fee('0.01'))),
    )
    expect(await verifyPolicyBytecode(w.anvil.provider, deployed.address, other)).toBe(false)
    const tx = await w.anvil.provider.getTransaction(deployed.transactionHash)
    expect(tx!.data.startsWith(rebuilt.bytecode)).toBe(true)
  })

  it('deploys a bring-your-own policy source', async () => {
    const p = await deployPolicy(
      w.owner,
      { source: JOB_PARAMS_POLICY, contractName: 'HelloOnly' },
      {
        nodeRegistry: w.addresses.nodeRegistry,
      },
    )
    const c = new Contract(p.address, p.compiled.abi as Record<string, unknown>[], w.anvil.provider)
    expect(await c.registry!()).toBe(w.addresses.nodeRegistry)
    const f = new ContractFactory(p.compiled.abi as Record<string, unknown>[], p.compiled.bytecode)
    expect(f.bytecode).toBe(p.compiled.bytecode)
  })
})
