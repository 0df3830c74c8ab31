/**
 * What `attested()` costs on the fast path, measured in one run on one keyguard (anvil, a tpm2
 * sealer on swtpm, an executor whose attestation agent runs on another swtpm, libp2p on
 * loopback), requests interleaved round-robin over three capsules so that load drifts hit all
 * lanes alike:
 *
 * - baseline: a capsule without `attested()` with the policy read skipped (what the fast path
 *   did before the gate existed: same keyguard, its chain client answering "not required" for
 *   this capsule without a read);
 * - plain: a capsule without `attested()`, the policy read done (one `eth_call` pair, in
 *   parallel with the fast path's other reads; no challenge);
 * - attested: a capsule with `attested()`: the read, then the `/digicap/attest/1.0.0` challenge
 *   (a TPM2_Quote on swtpm and its verification) before the unwrap.
 *
 * Run: `node bench/attested-release.ts [requests per lane]` (default 60). Prints p50/p99 per lane
 * and each lane's p50 against the baseline's.
 */
import { attestationRecordHash, encodeAttestationRecord } from '@digicap/attestation'
import { createAttestationAgent, serveAttestation } from '@digicap/attestation/agent'
import { attested } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { fastPathProtocol, request, signAccessRequest } from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { getBytes, hexlify, randomBytes } from 'ethers'
import { type ChainClient, createKeyguard, tpm2Sealer } from '../src/index.ts'
import { startSwtpm } from '../src/testing.ts'
import {
  chainClientFor,
  createNode,
  executorSide,
  keyguardParts,
  MIN_STAKE,
  quietLogger,
  registerCapsule,
  send,
  setupChain,
  storeKey,
} from '../test/helpers/world.ts'

const requests = Number(process.argv[2] ?? 60)
const warmup = 5
const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number

const [chain, sealerTpm, agentTpm, kgNode, exec] = await Promise.all([
  setupChain(),
  startSwtpm(),
  startSwtpm(),
  createNode(),
  executorSide(),
])
const sealer = tpm2Sealer({ tcti: sealerTpm.tcti, createIfMissing: true, logger: quietLogger })
const parts = await keyguardParts(undefined, sealer)
try {
  const agent = createAttestationAgent({ tcti: agentTpm.tcti })
  await agent.resetRunPcr()
  const keys = await agent.provision()
  const q = await agent.quote({
    nonce: randomBytes(32),
    grantId: randomBytes(32),
    ephemeralPublicKey: randomBytes(32),
  })
  const record = { ...keys, bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)) }
  await send(
    chain.c.nodeRegistry
      .connect(chain.executor)
      .register(exec.node.peerId.toMultihash().bytes, attestationRecordHash(record), 1, {
        value: MIN_STAKE,
      }),
  )
  await serveAttestation(exec.node, agent, { record: encodeAttestationRecord(record) })
  const policy = await deployPolicy(chain.owner, attested(), {
    nodeRegistry: chain.addresses.nodeRegistry,
  })
  const lanes = {
    baseline: await registerCapsule(chain, kgNode),
    plain: await registerCapsule(chain, kgNode),
    attested: await registerCapsule(chain, kgNode, policy.address),
  }
  for (const id of Object.values(lanes)) await storeKey(parts, id, randomBytes(32))
  const real = chainClientFor(chain)
  const chainClient: ChainClient = Object.create(real)
  // The baseline lane: no policy read, as before the gate.
  chainClient.attestationRequired = (capsuleId) =>
    capsuleId === lanes.baseline ? Promise.resolve(false) : real.attestationRequired(capsuleId)
  const keyguard = createKeyguard({
    dataDir: parts.dir,
    confirmations: 0,
    startBlock: chain.addresses.deployBlock,
    pollIntervalMs: 600_000,
    fastPath: { enabled: true, rate: { capacity: 100_000, refillPerSecond: 100_000 } },
  })({ ...parts, chain: chainClient, libp2p: kgNode, logger: quietLogger })
  let audited = 0
  let granted = 0
  keyguard.events.addEventListener('audit-recorded', () => audited++)
  keyguard.events.addEventListener('fast-path-granted', () => granted++)
  await keyguard.start()
  await exec.node.peerStore.merge(kgNode.peerId, { multiaddrs: kgNode.getMultiaddrs() })
  await kgNode.peerStore.merge(exec.node.peerId, { multiaddrs: exec.node.getMultiaddrs() })
  const domain = {
    chainId: BigInt(chain.addresses.chainId),
    verifyingContract: chain.addresses.accessController as `0x${string}`,
  }
  const executorKey = getBytes(chain.executor.privateKey)
  const executor = getBytes(chain.executor.address)
  const once = async (capsuleId: string): Promise<number> => {
    const req = signAccessRequest(
      {
        capsuleId: getBytes(capsuleId),
        executor,
        ephemeralKey: getBytes(exec.newEphemeral()),
        measurement: getBytes(chain.measurement),
        jobParamsHash: keccak_256(new Uint8Array(0)),
        fee: 0n,
        nonce: randomBytes(32),
        expiry: BigInt(Math.floor(Date.now() / 1000) + 120),
        jobParams: new Uint8Array(0),
      },
      domain,
      executorKey,
    )
    const t = performance.now()
    const res = await request(exec.node, kgNode.peerId, fastPathProtocol, req)
    const ms = performance.now() - t
    if (res.status !== 'granted') throw new Error(`refused: ${res.reasonCode} ${res.reason}`)
    // Isolated: the audit transaction lands before the next request.
    while (audited < granted) await new Promise((r) => setTimeout(r, 5))
    return ms
  }
  const times: Record<keyof typeof lanes, number[]> = { baseline: [], plain: [], attested: [] }
  for (let i = 0; i < warmup + requests; i++) {
    for (const lane of Object.keys(lanes) as (keyof typeof lanes)[]) {
      const ms = await once(lanes[lane])
      if (i >= warmup) times[lane].push(ms)
    }
  }
  await keyguard.stop()
  const stats = (t: number[]) => {
    const s = [...t].sort((a, b) => a - b)
    return { p50: percentile(s, 50), p99: percentile(s, 99) }
  }
  const base = stats(times.baseline)
  console.log(
    `fast-path release with and without attested(), ${requests} requests per lane after ${warmup} warm-up, interleaved; anvil + 2 swtpm + libp2p on loopback`,
  )
  for (const lane of Object.keys(lanes) as (keyof typeof lanes)[]) {
    const r = stats(times[lane])
    console.log(
      `${lane.padEnd(10)} p50 ${r.p50.toFixed(2).padStart(7)} ms   p99 ${r.p99.toFixed(2).padStart(7)} ms   ×${(r.p50 / base.p50).toFixed(2)} of baseline p50`,
    )
  }
  console.log(`executor record ${hexlify(attestationRecordHash(record)).slice(0, 18)}…`)
} finally {
  await Promise.all([kgNode.stop(), exec.stop(), chain.anvil.stop()])
  await Promise.all([sealerTpm.stop(), agentTpm.stop()])
  await parts.cleanup()
}
