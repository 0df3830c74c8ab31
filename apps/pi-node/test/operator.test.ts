/**
 * The keyguard operator account, end to end: `init --deploy` derives, funds and approves it;
 * `status` reports it; the `serve` daemon (a child process) signs its fast-path audit records
 * with it while the owner seals capsules from other processes at the same time — no nonce race
 * (before, both used the owner's account), and every audit record lands on chain.
 * Real anvil, a software sealer, real libp2p on loopback.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateX25519KeyPair } from '@digicap/capsule-core'
import { connectDigicap, type DigicapContracts } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { deriveOwnerIdentity, wipeOwnerIdentity } from '@digicap/keyguard'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { addressToBytes, fastPathProtocol, request, signAccessRequest } from '@digicap/protocol'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { getBytes, hexlify, keccak256, parseEther, randomBytes, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CliDaemon, type Doc, runJson, startCli } from './helpers/cli.ts'

async function until(cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Lines that warn about the insecure sealer: the software sealer's warning is one per command. */
const insecureLines = (stderr: string) => stderr.split('\n').filter((l) => /INSECURE/.test(l))
const ONE_WARNING = [
  'WARNING: INSECURE: the software sealer keeps its private key in a file; anyone who can read it can unwrap every capsule key. Use a TPM.',
]

describe('keyguard operator account (real anvil, software sealer, serve daemon)', () => {
  let anvil: Anvil
  let dir: string
  let env: Record<string, string>
  let init: Doc
  let c: DigicapContracts
  let executor: Wallet
  let execNode: DigicapNode
  let daemon: CliDaemon

  beforeAll(async () => {
    anvil = await startAnvil()
    dir = await mkdtemp(join(tmpdir(), 'pi-node-operator-'))
    env = {
      DIGICAP_DATA_DIR: join(dir, 'node'),
      DIGICAP_RPC_URL: anvil.rpcUrl,
      DIGICAP_SEALER: 'software',
      DIGICAP_ALLOW_INSECURE_SEALER: '1',
    }
    init = await runJson(
      ['init', '--deploy', '--listen', '/ip4/127.0.0.1/tcp/0', '--json', '--show-mnemonic-in-json'],
      env,
    )
    expect(init.code).toBe(0)
    expect(insecureLines(init.stderr)).toEqual(ONE_WARNING)
    executor = anvil.signers[2] as Wallet
    c = connectDigicap(init.contracts, executor)
    execNode = await createDigicapNode({})
    await (
      await c.nodeRegistry.register(
        execNode.libp2p.peerId.toMultihash().bytes,
        hexlify(randomBytes(32)),
        1,
        { value: parseEther('0.01') },
      )
    ).wait()
  })

  afterAll(async () => {
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGTERM')
      await daemon.exited
    }
    await execNode?.stop()
    await anvil?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('init --deploy derives the operator (m/44/60/0/0/1), funds it and has the owner approve it; status shows it', async () => {
    const id = await deriveOwnerIdentity(init.mnemonic)
    const operator = id.operatorAddress
    const ownerWallet = new Wallet(hexlify(id.ethereumPrivateKey), anvil.provider)
    wipeOwnerIdentity(id)
    expect(init.operator).toMatchObject({ address: operator, approved: true })
    expect(BigInt(init.operator.balanceWei)).toBeGreaterThan(0n)
    expect(init.operator.warning).toBeUndefined()
    expect(operator).not.toBe(init.owner.address)
    expect(await c.capsuleRegistry.isOperator(init.owner.address, operator)).toBe(true)
    const s = (await runJson(['status', '--json'], env)).status
    expect(s.operator).toEqual({
      address: operator,
      approved: true,
      balanceWei: init.operator.balanceWei,
    })
    // The owner revokes it (from a wallet with the words): status warns; serve re-approves it.
    const registry = connectDigicap(init.contracts, ownerWallet).capsuleRegistry
    await (await registry.getFunction('setOperator')(operator, false)).wait()
    const revoked = await runJson(['status', '--json'], env)
    expect(revoked.status.operator).toMatchObject({ address: operator, approved: false })
    expect(revoked.status.operator.warning).toContain('not approved')
    expect(revoked.stderr).toContain(`WARNING: Keyguard operator ${operator}`)
    expect(insecureLines(revoked.stderr)).toEqual(ONE_WARNING)
  })

  it('serve re-approves the operator, then audits with it while the owner seals from other processes: no nonce race, every audit lands', async () => {
    const file = join(dir, 'data.bin')
    await writeFile(file, randomBytes(4096))
    const first = await runJson(['seal', file, '--policy', 'maxRuns(100)', '--json'], env)
    expect(first.code).toBe(0)
    expect(insecureLines(first.stderr)).toEqual(ONE_WARNING)

    daemon = await startCli(['serve', '--json', '--status-interval-ms', '200'], env)
    const { ready } = daemon
    // Started with the operator revoked (previous test): serve had the owner approve it again.
    expect(daemon.stderr()).toContain('"message":"keyguard operator approved"')
    // Built, started and described by the daemon: still one line.
    expect(insecureLines(daemon.stderr())).toEqual(ONE_WARNING)
    expect(await c.capsuleRegistry.isOperator(init.owner.address, init.operator.address)).toBe(true)
    const addr = (ready.multiaddrs as string[]).find((m) => m.includes('/127.0.0.1/'))
    await execNode.libp2p.dial(multiaddr(addr as string))
    const keyguardPeer = peerIdFromString(ready.peerId)
    const fromBlock = await anvil.provider.getBlockNumber()

    // Fast-path requests (each one an audit transaction by the daemon) …
    const N = 8
    const fastPath = (async () => {
      const granted: string[] = [] // ephemeral keys of granted requests
      for (let i = 0; i < N; i++) {
        const jobParams = new Uint8Array(0)
        const ephemeralKey = generateX25519KeyPair().publicKey
        const req = signAccessRequest(
          {
            capsuleId: getBytes(first.capsuleId),
            executor: addressToBytes(executor.address as `0x${string}`),
            ephemeralKey,
            measurement: randomBytes(32),
            jobParamsHash: getBytes(keccak256(jobParams)),
            fee: 0n,
            nonce: randomBytes(32),
            expiry: BigInt(Math.floor(Date.now() / 1000) + 300),
            jobParams,
          },
          { chainId: 31337n, verifyingContract: init.contracts.accessController },
          getBytes(executor.privateKey),
        )
        const res = await request(execNode.libp2p, keyguardPeer, fastPathProtocol, req)
        expect(res.status).toBe('granted')
        if (res.status === 'granted') granted.push(hexlify(ephemeralKey))
      }
      return granted
    })()
    // … while the owner seals (deploys a policy, registers the capsule) from other processes,
    // one after another (two owner processes at once would race each other, not the keyguard).
    const seals = (async () => {
      const out: Doc[] = []
      for (let i = 0; i < 2; i++) {
        out.push(await runJson(['seal', file, '--policy', 'maxRuns(1)', '--json'], env))
      }
      return out
    })()
    const [granted, sealed] = await Promise.all([fastPath, seals])
    for (const s of sealed) expect({ code: s.code, error: s.error }).toEqual({ code: 0 })
    expect(granted).toHaveLength(N)

    const operator = init.operator.address as string
    const grants = async () =>
      (
        await c.accessController.queryFilter(
          c.accessController.getEvent('AccessGranted'),
          fromBlock,
          'latest',
        )
      ).filter((l) => 'args' in l && l.args[6] === true)
    await until(async () => (await grants()).length === N)
    const logs = await grants()
    // One on-chain record per served request (matched by ephemeral key: the grant id the
    // keyguard answers with predicts the run index, which concurrent requests can shift).
    expect(
      new Set(logs.map((l) => String((l as { args: unknown[] }).args[3]).toLowerCase())),
    ).toEqual(new Set(granted))
    for (const l of logs) {
      expect((await l.getTransaction()).from).toBe(operator)
    }
    await until(async () => {
      const s = (await runJson(['status', '--json'], env)).status
      return s.daemon.keyguard?.fastPath.auditPending === 0
    })
    expect(daemon.stderr()).not.toContain('audit-alert')
    expect(daemon.stderr()).not.toMatch(/NONCE_EXPIRED|nonce too low|REPLACEMENT_UNDERPRICED/i)
    expect(daemon.stderr()).not.toContain('keyguard operator not ready')

    daemon.child.kill('SIGTERM')
    expect(await daemon.exited).toBe(0)
  }, 150_000)
})
