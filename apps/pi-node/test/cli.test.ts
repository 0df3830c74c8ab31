import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openFile, parseCapsuleHeader, verifyCapsuleHeader } from '@digicap/capsule-core'
import { connectDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { createKeyStore, tpm2Sealer, unwrapDataKey } from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { decryptImage, digicapUnwrapper, pullImage, readImageDistribution } from '@digicap/oci'
import { createDigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildBusyboxImage, SUM_CSV_SCRIPT } from '../../../packages/oci/test/busybox-image.ts'
import {
  type CliRun,
  type Doc,
  HEAVY_MODULES,
  runCli,
  runCliListingModules,
  startCli,
} from './helpers/cli.ts'

function jsonOf(r: CliRun): Doc {
  try {
    return JSON.parse(r.stdout)
  } catch {
    throw new Error(
      `stdout is not one JSON document (exit ${r.code}):\n${r.stdout}\n--- stderr:\n${r.stderr}`,
    )
  }
}

describe('pi-node CLI (real anvil, real swtpm)', () => {
  let anvil: Anvil
  let tpm: Swtpm
  let dir: string
  let dataDir: string
  let env: Record<string, string>
  let mnemonic: string
  let owner: string
  let sealed: Doc
  let plaintext: Buffer

  beforeAll(async () => {
    ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
    dir = await mkdtemp(join(tmpdir(), 'pi-node-cli-'))
    dataDir = join(dir, 'node')
    env = { DIGICAP_DATA_DIR: dataDir, DIGICAP_RPC_URL: anvil.rpcUrl }
  })
  afterAll(async () => {
    await Promise.all([anvil?.stop(), tpm?.stop()])
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('prints --help for every command', async () => {
    const cmds = ['init', 'seal', 'seal-image', 'move-policy', 'status', 'recover', 'serve']
    const runs = await Promise.all([runCli(['--help']), ...cmds.map((c) => runCli([c, '--help']))])
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0, 0, 0, 0, 0, 0])
    expect(runs[0]?.stdout).toContain('Usage: pi-node <command>')
    cmds.forEach((c, i) => {
      expect(runs[i + 1]?.stdout).toContain(`pi-node ${c}`)
    })
    const [version, versionJson] = await Promise.all([
      runCli(['--version']),
      runCli(['-V', '--json']),
    ])
    expect(version.code).toBe(0)
    expect(version.stdout).toBe(`pi-node 0.0.0 (node ${process.versions.node})\n`)
    expect(JSON.parse(versionJson.stdout)).toEqual({
      name: 'pi-node',
      version: '0.0.0',
      node: process.versions.node,
    })
  })

  it('rejects bad command lines with exit 2 and error[USAGE], and bad states with their codes', async () => {
    const [unknownFlag, unknownCmd, insecure, json, notInit, noChain] = await Promise.all([
      runCli(['status', '--bogus'], env),
      runCli(['frobnicate'], env),
      runCli(['init', '--deploy', '--sealer', 'software'], env),
      runCli(['seal', 'x.bin', '--json'], { ...env, DIGICAP_DATA_DIR: join(dir, 'empty') }),
      runCli(['status'], { ...env, DIGICAP_DATA_DIR: join(dir, 'empty') }),
      runCli(['init', '--deploy', '--tcti', tpm.tcti, '--rpc-url', 'http://127.0.0.1:9'], {
        DIGICAP_DATA_DIR: join(dir, 'nochain'),
      }),
    ])
    expect(unknownFlag.code).toBe(2)
    expect(unknownFlag.stderr).toMatch(/^error\[USAGE\]: .*bogus/m)
    expect(unknownFlag.stderr).toContain('hint: See pi-node status --help.')
    expect(unknownCmd.code).toBe(2)
    expect(unknownCmd.stderr).toContain('error[USAGE]: Unknown command')
    expect(insecure.code).toBe(2)
    expect(insecure.stderr).toContain('error[USAGE]: The software sealer')
    expect(json.code).toBe(1)
    expect(jsonOf(json)).toMatchObject({ ok: false, error: { code: 'NOT_INITIALISED' } })
    expect(notInit.code).toBe(1)
    expect(notInit.stderr).toContain('error[NOT_INITIALISED]')
    expect(noChain.code).toBe(1)
    expect(noChain.stderr).toContain('error[CHAIN_UNREACHABLE]')
  })

  it('init --deploy creates the owner, TPM key and config; the mnemonic only on stderr', async () => {
    const r = await runCli(
      ['init', '--deploy', '--tcti', tpm.tcti, '--listen', '/ip4/127.0.0.1/tcp/0', '--json'],
      env,
    )
    const doc = jsonOf(r)
    expect(r.code).toBe(0)
    expect(doc).toMatchObject({ ok: true, command: 'init', deployed: true, chainId: 31337 })
    expect(doc.owner.address).toMatch(/^0x[0-9a-fA-F]{40}$/)
    expect(doc.owner.peerId).toMatch(/^12D3KooW/)
    expect(doc.sealer).toMatchObject({ kind: 'tpm2' })
    expect(doc.mnemonic).toBeUndefined()
    const words = [...r.stderr.matchAll(/^\s*\d+\. ([a-z]+)$/gm)].map((m) => m[1])
    expect(words).toHaveLength(24)
    mnemonic = words.join(' ')
    owner = doc.owner.address
    const config = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8'))
    expect(config).toMatchObject({
      version: 1,
      chainId: 31337,
      sealer: { kind: 'tpm2', tcti: tpm.tcti },
    })
    expect((await stat(join(dataDir, 'config.json'))).mode & 0o077).toBe(0)
    expect(await anvil.provider.getCode(config.contracts.capsuleRegistry)).not.toBe('0x')

    const again = await runCli(['init', '--deploy', '--tcti', tpm.tcti], env)
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('error[ALREADY_INITIALISED]')
  })

  it('seal: registered on chain with its CID, blocks on disk, wrapped keys stored, header signed by the owner', async () => {
    plaintext = randomBytes(3 * 1024 * 1024 + 5)
    const file = join(dir, 'data.bin')
    await writeFile(file, plaintext)
    const receiverKey = randomBytes(32).toString('hex')
    const r = await runCli(
      [
        'seal',
        file,
        '--policy',
        'all(minReputation(50), maxRuns(3))',
        '--memory-mb',
        '64',
        '--receiver',
        `${receiverKey}@12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA`,
        '--json',
      ],
      env,
    )
    sealed = jsonOf(r)
    expect(r.code).toBe(0)
    expect(sealed).toMatchObject({ ok: true, command: 'seal', plaintextSize: plaintext.length })
    expect(sealed.announced).toEqual({ ok: false, reason: 'serve-not-running' })
    expect(r.stderr).not.toContain(mnemonic.split(' ').slice(0, 3).join(' '))

    const config = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8'))
    const { capsuleRegistry } = connectDigicap(config.contracts, anvil.provider)
    const onChain = await capsuleRegistry.getCapsule(sealed.capsuleId)
    expect(onChain.cid).toBe(sealed.cid)
    expect(onChain.owner).toBe(owner)
    expect(onChain.policy).toBe(sealed.policy)

    const capsuleDir = join(dataDir, 'capsules', sealed.capsuleId)
    expect(await readFile(join(capsuleDir, 'policy.sol'), 'utf8')).toContain(
      'contract DigicapPolicy',
    )
    const policyMeta = JSON.parse(await readFile(join(capsuleDir, 'policy.json'), 'utf8'))
    expect(policyMeta).toMatchObject({
      address: sealed.policy,
      expression: 'all(minReputation(50), maxRuns(3))',
    })

    const capsule = await readFile(sealed.capsulePath)
    const parsed = parseCapsuleHeader(capsule)
    expect(verifyCapsuleHeader(parsed, { owner: owner as `0x${string}` })).toBe(owner)
    expect(parsed.header.runtime).toEqual({ kind: 'data', memoryLimit: 64 * 1024 * 1024 })
    expect(parsed.header.policy.policy).toBe(sealed.policy)
    expect(parsed.header.receivers).toHaveLength(1)
    expect(Buffer.from(parsed.header.receivers[0]?.publicKey ?? []).toString('hex')).toBe(
      receiverKey,
    )
    expect(parsed.header.wrappedKeys.map((w) => w.scheme)).toEqual([
      'tpm2-rsa-oaep-sha256',
      'hpke-x25519-recovery',
    ])

    const keys = await createKeyStore(join(dataDir, 'keys'))
    const record = await keys.get(sealed.capsuleId)
    expect(record?.wrappedKeys).toHaveLength(2)
    expect(record?.metadata.cid).toBe(sealed.cid)

    const node = await createDigicapNode({ dataDir: join(dataDir, 'ipfs'), datastore: 'memory' })
    try {
      const store = heliaCapsuleStore(node.helia)
      expect(await store.has(sealed.cid)).toBe(true)
      const parts: Uint8Array[] = []
      for await (const c of store.get(sealed.cid)) parts.push(c)
      expect(Buffer.concat(parts).equals(capsule)).toBe(true)
    } finally {
      await node.stop()
    }
  })

  it('status --json reports the node; seal refuses bad input with typed errors', async () => {
    const file = join(dir, 'data.bin')
    // Temps of atomic writes a crash left (pid above Linux's pid_max: gone) are cleaned at
    // start; a running writer's (this test's parent pid: alive) is kept.
    const capsuleDir = join(dataDir, 'capsules', sealed.capsuleId)
    const crashed = [
      join(dataDir, '.tmp-config.json.9999999.a1b2c3d4e5f6'),
      join(dataDir, '.tmp-owner.json.9999999.a1b2c3d4e5f6'),
      join(dataDir, 'serve.json.a1b2c3d4e5f6.tmp'),
      join(capsuleDir, '.tmp-capsule.json.9999999.a1b2c3d4e5f6'),
    ]
    const live = join(dataDir, `.tmp-serve.json.${process.ppid}.a1b2c3d4e5f6`)
    for (const f of [...crashed, live]) await writeFile(f, '{')
    const [r, code, policy, missing, receiver, confirmations] = await Promise.all([
      runCliListingModules(['status', '--json'], env),
      runCli(['seal', file, '--policy', 'maxRuns(1)', '--entry', 'main.js', '--code', file], env),
      runCli(['seal', file, '--policy', 'maxRuns('], env),
      runCli(['seal', join(dir, 'nope.bin'), '--policy', 'maxRuns(1)'], env),
      runCli(['seal', file, '--policy', 'maxRuns(1)', '--receiver', 'zz'], env),
      runCli(['serve', '--confirmations', 'x'], env),
    ])
    expect(confirmations.code).toBe(2)
    expect(confirmations.stderr).toContain('error[USAGE]: --confirmations must be a whole number')
    expect(code.code).toBe(1)
    expect(code.stderr).toContain('error[CONFIG]: --entry and --code are for code capsules')
    expect(policy.code).toBe(1)
    expect(policy.stderr).toContain('error[POLICY_EXPRESSION]')
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('error[INPUT_FILE]')
    expect(receiver.code).toBe(2)
    expect(receiver.stderr).toContain('error[USAGE]')
    expect(r.code).toBe(0)
    const { status } = jsonOf(r)
    expect(status).toMatchObject({
      chainId: 31337,
      owner: { address: owner },
      capsules: 1,
      daemon: { running: false },
      chain: { reachable: true },
      sealer: { kind: 'tpm2' },
    })
    // A cold `status` loads no ethers, libp2p, helia or metrics (ADR 0042): its chain reads are
    // plain JSON-RPC and its peer id is computed without libp2p, so it starts near node's time.
    expect(r.loaded.some((f) => f.includes('/commands/status.ts'))).toBe(true)
    expect(r.loaded.filter((f) => HEAVY_MODULES.test(f))).toEqual([])
    expect(status.chain.head).toBeGreaterThan(0)
    expect(crashed.filter((f) => existsSync(f))).toEqual([])
    expect(existsSync(live)).toBe(true)
    await rm(live)
  })

  it('move-policy deploys a new rule and moves the capsule to it, then back by address; bad input is refused first', async () => {
    const id = sealed.capsuleId as string
    const registry = connectDigicap(
      JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8')).contracts,
      anvil.provider,
    ).capsuleRegistry
    const before = (await registry.getCapsule(id)).policy
    const sent = () => anvil.provider.getTransactionCount(owner)
    const nonce = await sent()
    const [neither, both, badRule] = await Promise.all([
      runCli(['move-policy', id], env),
      runCli(['move-policy', id, '--policy', 'maxRuns(9)', '--policy-address', before], env),
      runCli(['move-policy', id, '--policy', 'maxRuns('], env),
    ])
    expect([neither.code, both.code]).toEqual([2, 2])
    expect(neither.stderr).toContain('error[USAGE]: move-policy takes --policy or --policy-address')
    expect(badRule.code).toBe(1)
    expect(badRule.stderr).toContain('error[POLICY_EXPRESSION]')
    expect(await sent()).toBe(nonce)

    const moved = jsonOf(await runCli(['move-policy', id, '--policy', 'maxRuns(9)', '--json'], env))
    expect(moved).toMatchObject({ ok: true, previousPolicy: before, recordUpdated: true })
    expect(moved.deployedPolicy).toMatchObject({ address: moved.policy, reused: false })
    expect((await registry.getCapsule(id)).policy).toBe(moved.policy)
    const records = await createKeyStore(join(dataDir, 'keys'))
    expect((await records.get(id))?.metadata.policy).toBe(moved.policy)

    const back = await runCli(['move-policy', id, '--policy-address', before], env)
    expect(back.code).toBe(0)
    expect(back.stdout).toContain(
      `Moved ${id}\n  from policy  ${moved.policy}\n  to policy    ${before}\n`,
    )
    expect((await registry.getCapsule(id)).policy).toBe(before)
    expect((await records.get(id))?.metadata.policy).toBe(before)
    expect(await sent()).toBe(nonce + 3) // the deployment and two updatePolicy
  })

  it('serve provides the node and hears the announcement of a new seal; SIGTERM stops it cleanly', async () => {
    const { child, ready, stderr, exited } = await startCli(['serve', '--json'], env)
    try {
      expect(ready).toMatchObject({
        ok: true,
        command: 'serve',
        pinned: 1,
        keyguard: { running: true, chain: { chainId: '31337', confirmations: 0 } },
      })
      expect(existsSync(join(dataDir, 'serve.json'))).toBe(true)

      const file = join(dir, 'small.txt')
      await writeFile(file, 'hello capsule')
      // Sealed in its own process (a handed seal announces from serve itself: seal-handoff).
      const r = await runCli(['seal', file, '--no-daemon', '--policy', 'maxRuns(1)', '--json'], env)
      const doc = jsonOf(r)
      expect(doc.announced).toEqual({ ok: true, recipients: 1 })
      const deadline = Date.now() + 10_000
      while (!stderr().includes(doc.capsuleId) && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 50))
      }
      expect(stderr()).toContain('"message":"capsule announced"')
      expect(stderr()).toContain(doc.capsuleId)

      const status = jsonOf(await runCli(['status', '--json'], env)).status
      expect(status.daemon).toMatchObject({ running: true, pid: child.pid })
      const twice = await runCli(['serve'], env)
      expect(twice.code).toBe(1)
      expect(twice.stderr).toContain('error[DAEMON_RUNNING]')
    } finally {
      child.kill('SIGTERM')
    }
    expect(await exited).toBe(0)
    expect(existsSync(join(dataDir, 'serve.json'))).toBe(false)
    // Four CLI processes one after the other: 57 s of 60 were seen at load 30 on 2 cores.
  }, 120_000)

  it('serve and status warn when a non-dev chain is read through one RPC provider', async () => {
    // The same node said to be on Sepolia: its one RPC (127.0.0.1) could forge grants there.
    const configFile = join(dataDir, 'config.json')
    const original = await readFile(configFile, 'utf8')
    await writeFile(configFile, JSON.stringify({ ...JSON.parse(original), chainId: 11155111 }))
    const warning = 'WARNING: chain 11155111 is read through one RPC provider (127.0.0.1)'
    try {
      const [status, serve, two] = await Promise.all([
        runCli(['status'], env),
        runCli(['serve'], env),
        runCli(['status'], { ...env, DIGICAP_RPC_URLS: 'https://rpc.example.org' }),
      ])
      expect(status.code).toBe(0)
      expect(status.stderr).toContain(warning)
      expect(status.stderr).toContain('DIGICAP_RPC_URLS')
      // Printed at start, before anything else: here the RPC then serves another chain.
      expect(serve.stderr).toContain(warning)
      expect(serve.stderr).toContain('error[CHAIN_MISMATCH]')
      expect(two.code).toBe(0)
      expect(two.stderr).not.toContain('RPC provider')
    } finally {
      await writeFile(configFile, original)
    }
  }, 120_000)

  it('recover onto a new TPM from the mnemonic on stdin, then open the sealed capsule', async () => {
    await tpm.stop()
    tpm = await startSwtpm()
    const before = await runCli(['status', '--json'], env)
    expect(jsonOf(before).status.sealer.error.code).toMatch(/^TPM_/)

    const bad = await runCli(['recover', '--tcti', tpm.tcti], env, '')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('error[USAGE]')

    const r = await runCli(['recover', '--tcti', tpm.tcti, '--json'], env, `${mnemonic}\n`)
    const doc = jsonOf(r)
    expect(r.code).toBe(0)
    expect(doc.recovered).toHaveLength(2)
    expect(doc.recovered).toContain(sealed.capsuleId)
    expect(doc.failed).toEqual([])
    expect(doc.owner).toBe(owner)

    const config = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8'))
    expect(config.sealer.tcti).toBe(tpm.tcti)
    const keys = await createKeyStore(join(dataDir, 'keys'))
    const record = await keys.get(sealed.capsuleId)
    const dataKey = await unwrapDataKey(record?.wrappedKeys ?? [], tpm2Sealer({ tcti: tpm.tcti }))
    const out = join(dir, 'opened.bin')
    await openFile({
      input: sealed.capsulePath,
      output: out,
      dataKey,
      owner: owner as `0x${string}`,
    })
    expect((await readFile(out)).equals(plaintext)).toBe(true)
    const status = jsonOf(await runCli(['status', '--json'], env)).status
    expect(status.sealer).toMatchObject({ kind: 'tpm2', keyId: doc.sealer.keyId })
    // recover also rebuilt from the chain: both capsules were already here (present), and the
    // chain's keyguard record now names the new TPM key.
    expect(doc.chain.present).toContain(sealed.capsuleId)
    expect(doc.chain.keyguardUpdated).toContain(sealed.capsuleId)
  }, 120_000)

  it('seal-image (after recovery): layers encrypted to the capsule key (TPM-wrapped), blobs on disk, header commits to the manifest; a docker archive too', async () => {
    const image = await buildBusyboxImage({
      files: { 'app/sum.sh': SUM_CSV_SCRIPT },
      config: { Cmd: ['/bin/sh', '/app/sum.sh'] },
      padBytes: 1_500_000,
    })
    const csv = join(dir, 'sales.csv')
    await writeFile(csv, 'region,amount\nnorth,1\nsouth,2\n')
    const archive = join(dir, 'image.tar')
    try {
      const r = await runCli(
        [
          'seal-image',
          image.dir,
          '--input',
          csv,
          '--policy',
          'maxRuns(2)',
          '--time-ms',
          '20000',
          '--json',
        ],
        env,
      )
      const doc = jsonOf(r)
      expect(r.code).toBe(0)
      expect(doc).toMatchObject({ ok: true, command: 'seal-image' })
      // progress on stderr: the layers, then the capsule
      expect(r.stderr).toMatch(/image\s+\[#+\]\s+100%/)
      const parsed = parseCapsuleHeader(await readFile(doc.capsulePath))
      expect(parsed.header.runtime).toEqual({
        kind: 'oci',
        entry: doc.image.manifestDigest,
        timeLimit: 20000,
      })
      const config = JSON.parse(await readFile(join(dataDir, 'config.json'), 'utf8'))
      const { capsuleRegistry } = connectDigicap(config.contracts, anvil.provider)
      expect((await capsuleRegistry.getCapsule(doc.capsuleId)).cid).toBe(doc.cid)
      // the blobs are in the blockstore serve provides; only the TPM-held key opens the layers
      const node = await createDigicapNode({ dataDir: join(dataDir, 'ipfs'), datastore: 'memory' })
      const work = await mkdtemp(join(tmpdir(), 'pi-node-image-'))
      try {
        const store = heliaCapsuleStore(node.helia)
        const distribution = await readImageDistribution(store, doc.image.distribution)
        const pulled = await pullImage({
          store,
          distribution,
          manifestDigest: doc.image.manifestDigest,
          to: join(work, 'sealed'),
        })
        const sealer = tpm2Sealer({ tcti: tpm.tcti })
        const [plain] = await decryptImage({
          from: pulled.layout,
          to: join(work, 'plain'),
          manifestDigest: doc.image.manifestDigest,
          unwrappers: [
            digicapUnwrapper({
              capsuleId: doc.capsuleId,
              dataKey: (req) => unwrapDataKey(req.wrappedKeys, sealer),
            }),
          ],
        })
        // decryption gives back the very manifest that was sealed
        expect(plain?.digest).toBe(image.manifestDigest)
      } finally {
        await node.stop()
        await rm(work, { recursive: true, force: true })
      }
      // a `docker save` archive goes through skopeo first
      execFileSync('skopeo', [
        '--insecure-policy',
        'copy',
        `oci:${image.dir}:${image.ref}`,
        `docker-archive:${archive}:app:v1`,
      ])
      const fromArchive = await runCli(
        ['seal-image', archive, '--policy', 'maxRuns(1)', '--json'],
        env,
      )
      expect(fromArchive.code).toBe(0)
      const archived = jsonOf(fromArchive)
      expect(parseCapsuleHeader(await readFile(archived.capsulePath)).header.runtime).toEqual({
        kind: 'oci',
        entry: archived.image.manifestDigest,
      })
      const missing = await runCli(['seal-image', join(dir, 'nope'), '--policy', 'maxRuns(1)'], env)
      expect(missing.code).toBe(1)
      expect(missing.stderr).toContain('error[INPUT_FILE]')
    } finally {
      await image.dispose()
      await rm(archive, { force: true })
    }
  }, 240_000)
})
