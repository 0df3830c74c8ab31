/**
 * A dead Pi brought back from the paper words alone (real anvil, two real swtpms, real
 * helia/libp2p on loopback, the `pi-node recover` CLI): init, seal two capsules, a peer keeps
 * their blocks; the whole data folder and the TPM state are deleted; `pi-node recover` on an
 * empty folder with a new TPM, given only the words, the chain and that peer, rebuilds the key
 * store; `serve` then releases the key of an old capsule to an executor's real run path.
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { privateKeySigner } from '@digicap/capsule-core'
import { connectDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { createExecutor, dataSandbox, type Executor, ethersExecutorChain } from '@digicap/executor'
import { createKeyStore, generateMnemonic, tpm2Sealer } from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import {
  createOwnerNode,
  initOwnerNode,
  loadOwnerNodeConfig,
  type RunningKeyguardNode,
} from '@digicap/owner/node'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { parseEther, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Doc, runCli, spawnCli } from './helpers/cli.ts'

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

describe('pi-node recover on a new Pi from the words, the chain and a peer', () => {
  let anvil: Anvil
  let tpm: Swtpm
  let dir: string
  let dataDir: string
  let mnemonic: string
  let contracts: { capsuleRegistry: string; nodeRegistry: string; accessController: string }
  let archive: DigicapNode
  let executorNode: DigicapNode | undefined
  let executor: Executor | undefined
  let serving: RunningKeyguardNode | undefined
  const sealed: { capsuleId: string; cid: string; plaintext: Buffer }[] = []
  let lost: { capsuleId: string; cid: string }

  beforeAll(async () => {
    ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
    dir = await mkdtemp(join(tmpdir(), 'pi-node-recover-'))
    dataDir = join(dir, 'node')
    mnemonic = generateMnemonic()
    const init = await initOwnerNode({
      dataDir,
      rpcUrl: anvil.rpcUrl,
      sealer: { kind: 'tpm2', tcti: tpm.tcti },
      deploy: true,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      mnemonic,
    })
    contracts = init.config.contracts
    const pi = await createOwnerNode(init.config)
    for (const i of [1, 2]) {
      const file = join(dir, `data-${i}.bin`)
      const plaintext = Buffer.from(`capsule ${i}: ${'x'.repeat(3000 * i)}`)
      await writeFile(file, plaintext)
      const r = await pi.seal({ file, policy: 'maxRuns(5)' })
      sealed.push({ capsuleId: r.capsuleId, cid: r.cid, plaintext })
    }
    // A peer (a pinning node, or an executor that ran them) keeps the blocks.
    archive = await createDigicapNode({})
    const old = await pi.serve({ statusIntervalMs: 60_000 })
    try {
      await archive.libp2p.dial(multiaddr(old.multiaddrs()[0] as string))
      const store = heliaCapsuleStore(archive.helia)
      for (const s of sealed) await store.pin(s.cid, { signal: AbortSignal.timeout(30_000) })
    } finally {
      await old.stop()
    }
    // A third capsule sealed later: no peer but the dead Pi ever held its blocks.
    const late = join(dir, 'data-3.bin')
    await writeFile(late, 'sealed after the last backup')
    lost = await pi.seal({ file: late, policy: 'maxRuns(5)' })
    // The Pi dies: its whole data folder and its TPM are gone.
    await rm(dataDir, { recursive: true, force: true })
    await tpm.stop()
    tpm = await startSwtpm()
  }, 240_000)

  afterAll(async () => {
    await executor?.stop()
    await executorNode?.stop()
    await serving?.stop()
    await archive?.stop()
    await Promise.all([anvil?.stop(), tpm?.stop()])
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  const recoverArgs = () => [
    'recover',
    '--json',
    '--data-dir',
    dataDir,
    '--tcti',
    tpm.tcti,
    '--rpc-url',
    anvil.rpcUrl,
    '--capsule-registry',
    contracts.capsuleRegistry,
    '--node-registry',
    contracts.nodeRegistry,
    '--access-controller',
    contracts.accessController,
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--peer',
    `${archive.multiaddrs()[0]}`,
    '--fetch-timeout-ms',
    '4000',
    // The new key bound like a new Pi's on a hardware TPM (PCR 16: swtpm has no release PCR use).
    '--pcr-policy',
    '16',
  ]
  const ids = () => sealed.map((s) => s.capsuleId).sort()

  it('on an empty folder without the chain flags: CONFIG error, nothing written', async () => {
    const r = await runCli(['recover', '--data-dir', dataDir, '--tcti', tpm.tcti], {}, mnemonic)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('error[CONFIG]')
    expect(existsSync(join(dataDir, 'config.json'))).toBe(false)
    expect(existsSync(join(dataDir, 'owner.json'))).toBe(false)
  }, 120_000)

  it('on a new Pi with a hardware TPM and no release pinned: USAGE, as init (ADR 0036), not an unbound key', async () => {
    const bare = join(dir, 'bare-pi')
    const r = await runCli(
      [
        ...['recover', '--data-dir', bare, '--tcti', 'device:/dev/tpmrm0'],
        ...['--rpc-url', anvil.rpcUrl, '--capsule-registry', contracts.capsuleRegistry],
        ...['--node-registry', contracts.nodeRegistry],
        ...['--access-controller', contracts.accessController],
      ],
      {},
      mnemonic,
    )
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('error[USAGE]')
    expect(r.stderr).toContain('bound to the verified release (PCR 15) by default')
    expect(existsSync(join(bare, 'owner.json'))).toBe(false)
  }, 120_000)

  it('rebuilds every key it can find onto the new TPM, reports the lost one, points the chain at the new key; a crash in the middle is finished by a re-run', async () => {
    // First run: killed (a power cut) as soon as one capsule is done.
    const child = spawnCli(recoverArgs(), {})
    child.stdin.end(`${mnemonic}\n`)
    let stderr = ''
    const killed = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('close', (_code, signal) => resolve(signal)),
    )
    child.stderr.on('data', (d) => {
      stderr += d
      if (/rebuild 1\/3/.test(stderr)) child.kill('SIGKILL')
    })
    expect(await killed, stderr).toBe('SIGKILL')

    const r = await runCli(recoverArgs(), {}, `${mnemonic}\n`)
    const doc = JSON.parse(r.stdout) as Doc
    // The lost capsule fails with a typed reason; the run goes on and exits 1.
    expect(r.code).toBe(1)
    expect(doc.failed).toEqual([
      {
        capsuleId: lost.capsuleId,
        cid: lost.cid,
        reason: 'blocks-not-found',
        code: expect.any(String),
      },
    ])
    expect(r.stderr).toContain('rebuild 3/3')
    expect([...doc.recovered].sort()).toEqual(ids())
    expect(doc.notPinned).toEqual([])

    const recordFile = join(dataDir, 'tpm2-key.json')
    const newKey = await tpm2Sealer({ tcti: tpm.tcti, keyRecordFile: recordFile }).publicKey()
    // PCR-bound and rollback-protected (ADR 0094), this boot approved with the words during
    // the recovery at the new TPM's first epoch.
    const record = JSON.parse(await readFile(recordFile, 'utf8'))
    expect(record).toMatchObject({ version: 3, policy: { pcrs: [16] } })
    expect(record.policy.approval.epoch).toMatch(/^[0-9]+$/)
    expect(doc.sealer.keyId).toBe(newKey.keyId)
    const { capsuleRegistry } = connectDigicap(contracts, anvil.provider)
    for (const s of sealed) {
      const onChain = await capsuleRegistry.getCapsule(s.capsuleId)
      expect(onChain.keyguardKeyId).toBe(`0x${newKey.keyId}`)
      expect(new TextDecoder().decode(Buffer.from(onChain.keyguardPeerId.slice(2), 'hex'))).toBe(
        doc.peerId,
      )
    }
    const keys = await createKeyStore(join(dataDir, 'keys'))
    expect((await keys.list()).sort()).toEqual(ids())
  }, 240_000)

  it('is idempotent: a second run finds every key present and sends no transaction', async () => {
    const owner = JSON.parse(await readFile(join(dataDir, 'owner.json'), 'utf8')).address
    const nonce = await anvil.provider.getTransactionCount(owner)
    const r = await runCli(recoverArgs(), {}, `${mnemonic}\n`)
    const doc = JSON.parse(r.stdout) as Doc
    expect(doc.newConfig).toBe(false)
    expect(doc.chain.present.sort()).toEqual(ids())
    expect(doc.chain.recovered).toEqual([])
    expect(doc.chain.keyguardUpdated).toEqual([])
    expect(doc.failed.map((f: Doc) => f.capsuleId)).toEqual([lost.capsuleId])
    expect(await anvil.provider.getTransactionCount(owner)).toBe(nonce)
  }, 240_000)

  it('serves again: an executor runs an old capsule end to end through the chain path', async () => {
    serving = await (await createOwnerNode(await loadOwnerNodeConfig(dataDir))).serve({
      statusIntervalMs: 60_000,
    })
    expect(serving.pinned).toBe(2)
    const wallet = anvil.signers[3] as Wallet
    const chain = ethersExecutorChain({
      addresses: { chainId: String(anvil.chainId), ...contracts },
      signer: wallet,
    })
    executorNode = await createDigicapNode({})
    await chain.registerNode({
      peerId: executorNode.libp2p.peerId.toMultihash().bytes,
      attestationKeyHash: new Uint8Array(32),
      roles: 1,
      stake: parseEther('0.01'),
    })
    executor = createExecutor({ keyguardAddrs: [serving.multiaddrs()[0] as string] })({
      libp2p: executorNode.libp2p,
      store: heliaCapsuleStore(executorNode.helia),
      chain,
      signer: privateKeySigner(wallet.privateKey as `0x${string}`),
      sandboxes: { data: dataSandbox(async (bytes) => sha256(bytes)) },
    })
    await executor.start()
    const old = sealed[0] as (typeof sealed)[number]
    const run = await executor.runCapsule(old.cid)
    expect(run.path).toBe('chain')
    expect(run.capsuleId.toLowerCase()).toBe(old.capsuleId)
    expect(new TextDecoder().decode(run.result)).toBe(sha256(old.plaintext))
  }, 240_000)
})
