/**
 * What the fast-path reorg tests (ADR 0081) share: a capsule under `maxRuns(1)`, and the one-block
 * reorg that replaces the block of its fast-path audit with one holding the executor's own
 * chain-path `requestAccess` (which then takes run 0).
 */
import { all, environment, maxRuns } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import type { KeyguardWorld } from './keyguard-world.ts'
import { registerCapsule, storeKey } from './world.ts'

type World = Pick<KeyguardWorld, 'chain' | 'kgNode' | 'parts' | 'dataKeys' | 'capsuleId'>

/** Registers a capsule under `environment(measurement) ∧ maxRuns(1)` and stores its key. */
export async function maxRunsOneCapsule(world: World): Promise<string> {
  const p = await deployPolicy(
    world.chain.owner,
    all(environment(world.chain.measurement), maxRuns(1)),
    { nodeRegistry: world.chain.addresses.nodeRegistry },
  )
  const capsule = await registerCapsule(world.chain, world.kgNode, p.address)
  await storeKey(world.parts, capsule, world.dataKeys.get(world.capsuleId) as Uint8Array)
  return capsule
}

/**
 * `anvil_reorg` of depth 1: the head block (the audit's) is replaced by one holding the
 * executor's chain request for `capsule` (a fresh ephemeral key).
 */
export async function reorgAuditForChainRequest(w: KeyguardWorld, capsule: string): Promise<void> {
  const ac = w.chain.c.accessController
  const request = await ac
    .connect(w.chain.executor)
    .requestAccess.populateTransaction(capsule, w.exec.newEphemeral(), w.chain.measurement, '0x')
  const signed = await w.chain.executor.signTransaction(
    await w.chain.executor.populateTransaction({ ...request, gasLimit: 1_000_000 }),
  )
  await w.chain.anvil.provider.send('anvil_reorg', [1, [[signed, 0]]])
}

/** The grant id of the `AccessGranted` log in the head block (lower-case hex). */
export async function headBlockGrantId(w: KeyguardWorld): Promise<string> {
  const ac = w.chain.c.accessController
  const provider = w.chain.anvil.provider
  const logs = await provider.getLogs({
    address: await ac.getAddress(),
    fromBlock: await provider.getBlockNumber(),
    toBlock: 'latest',
  })
  const granted = logs.map((l) => ac.interface.parseLog(l)).find((l) => l?.name === 'AccessGranted')
  return String(granted?.args[0]).toLowerCase()
}
