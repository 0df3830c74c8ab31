/**
 * The SDK against the demo's chain: real anvil (`local` deployment), real swtpm behind the
 * pi-node's keyguard, real libp2p on loopback. A capsule names an SDK receiver; an executor
 * registered and run through the SDK takes it by the fast path and by the chain path; the
 * receiver gets each result, checked against the grant on chain, and opens it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseEther } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  generateIdentity,
  generateReceiverKey,
  getNetwork,
  localSigner,
  openReceiver,
  type Receiver,
  SignerUnsupportedError,
} from '../src/index.ts'
import { registerExecutor, runCapsule } from '../src/run.ts'
import { type DemoChain, startDemoChain } from './harness/demo-chain.ts'

const PROGRAM = 'digicap.output(digicap.inputText().toUpperCase())'
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

let chain: DemoChain
let receiver: Receiver
let dir: string
let cid: string
const receiverKey = generateReceiverKey()
// 32 random bytes: a valid secp256k1 key but with negligible probability.
const executor = { signer: localSigner(generateIdentity()), identity: generateIdentity() }

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'digicap-sdk-e2e-'))
  chain = await startDemoChain()
  const network = getNetwork('local', { rpcUrl: chain.rpcUrl })
  receiver = await openReceiver({ network, key: receiverKey.privateKey })
  await writeFile(join(dir, 'main.js'), PROGRAM)
  await writeFile(join(dir, 'data.txt'), 'hello capsule')
  const sealed = await chain.piNode([
    'seal',
    join(dir, 'data.txt'),
    '--policy',
    'all(minReputation(50), maxRuns(2))',
    '--runtime',
    'quickjs',
    '--entry',
    'main.js',
    '--code',
    join(dir, 'main.js'),
    '--receiver',
    `${hex(receiver.receiver.publicKey)}@${receiver.peerId}`,
  ])
  cid = sealed.cid
  await chain.fund(executor.signer.address)
  await registerExecutor({ network, ...executor, stake: parseEther('0.01') })
}, 120_000)

afterAll(async () => {
  await receiver?.stop()
  await chain?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('runCapsule + openReceiver on the demo chain', () => {
  it('fast path: the receiver gets the run’s result, signed by the grant’s executor', async () => {
    const run = await runCapsule({
      network: 'local',
      rpcUrl: chain.rpcUrl,
      ...executor,
      cid,
      path: 'fast',
      peers: [chain.keyguard, receiver.multiaddrs()[0] as string],
    })
    expect(run.path).toBe('fast')
    expect(new TextDecoder().decode(run.output)).toBe('HELLO CAPSULE')
    const got = await receiver.waitForResult({ runId: run.runId, timeoutMs: 30_000 })
    expect(new TextDecoder().decode(got.output)).toBe('HELLO CAPSULE')
    expect(got.executor).toBe(executor.signer.address)
    expect(got.grantId).toBe(run.grantId)
  })

  it('chain path: same, through a transaction to the AccessController', async () => {
    const run = await runCapsule({
      network: getNetwork('local', { rpcUrl: chain.rpcUrl }),
      ...executor,
      cid,
      path: 'chain',
      peers: [chain.keyguard, receiver.multiaddrs()[0] as string],
    })
    expect(run.path).toBe('chain')
    const got = await receiver.waitForResult({ runId: run.runId, timeoutMs: 30_000 })
    expect(new TextDecoder().decode(got.output)).toBe('HELLO CAPSULE')
  })

  it('a third run is refused by the policy (maxRuns(2)) with the executor’s typed error', async () => {
    const err = await runCapsule({
      network: 'local',
      rpcUrl: chain.rpcUrl,
      ...executor,
      cid,
      path: 'fast',
      peers: [chain.keyguard],
    }).catch((e: unknown) => e)
    expect((err as { code?: string }).code).toMatch(/^ACCESS_/)
  })

  it('a signer without a local key cannot run (typed), and nothing starts', async () => {
    const remote = {
      address: executor.signer.address,
      signTypedData: executor.signer.signTypedData,
    }
    const err = await runCapsule({
      network: 'local',
      rpcUrl: chain.rpcUrl,
      signer: remote,
      identity: executor.identity,
      cid,
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SignerUnsupportedError)
  })
})
