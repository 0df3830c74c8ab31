/**
 * The executor's attestation key, end to end: `init --tcti` on a real swtpm, `register` on a
 * real anvil (the registered attestationKeyHash is the record's SHA-256, the AK survives a
 * second register), and `serve` answering `/digicap/attest/1.0.0` over libp2p loopback. The
 * record's checks (another TPM, a torn file) are `@digicap/executor`'s test/node.test.ts.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  AttestationRefusedError,
  decodeAttestationRecord,
  QuoteVerificationError,
  quoteBinding,
  requestAttestation,
  requireAttestedRelease,
  verifyAttestation,
} from '@digicap/attestation'
import { createAttestationAgent } from '@digicap/attestation/agent'
import { connectDigicap, type DigicapAddresses, deployDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { generateMnemonic } from '@digicap/keyguard'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { type Swtpm, startSwtpm } from '@digicap/tpm/testing'
import { multiaddr } from '@multiformats/multiaddr'
import { getBytes, parseEther, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli, startCli } from './helpers/cli.ts'

const bytes = () => new Uint8Array(randomBytes(32))

let anvil: Anvil
let tpm: Swtpm
let addresses: DigicapAddresses
let dir: string
let execDir: string
let address: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'exnode-attest-'))
  execDir = join(dir, 'exec')
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
  const [deployer, funder] = anvil.signers as Wallet[]
  addresses = await deployDigicap(deployer as Wallet, {
    minStake: parseEther('0.01'),
    grantWindow: 600,
    disputeWindow: 3600,
    unbondingDelay: 3600,
  })
  const words = join(dir, 'words')
  await writeFile(words, generateMnemonic())
  const init = await runCli([
    'init',
    '--json',
    '--data-dir',
    execDir,
    '--rpc-url',
    anvil.rpcUrl,
    '--mnemonic-file',
    words,
    '--tcti',
    tpm.tcti,
    '--capsule-registry',
    addresses.capsuleRegistry,
    '--node-registry',
    addresses.nodeRegistry,
    '--access-controller',
    addresses.accessController,
  ])
  expect(init.stderr).toBe('')
  address = JSON.parse(init.stdout).address
  await (await (funder as Wallet).sendTransaction({ to: address, value: parseEther('1') })).wait()
}, 120_000)

afterAll(async () => {
  await anvil?.stop()
  await tpm?.stop()
  await rm(dir, { recursive: true, force: true })
})

const registeredHash = async (): Promise<Uint8Array> =>
  getBytes(
    (await connectDigicap(addresses, anvil.provider).nodeRegistry.getNode(address))
      .attestationKeyHash,
  )

/** `serve --json` as a child process, with its JSON lines (60 s for each awaited event). */
function serveProcess(extra: string[] = []) {
  const serve = startCli([
    'serve',
    '--json',
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--data-dir',
    execDir,
    ...extra,
  ])
  return { ...serve, waitFor: (event: string) => serve.waitFor(event, 60_000) }
}

/** A run that crashed mid-way: PCR 23 extended with a run's four values, never cleaned up. */
async function crashedRun(): Promise<string> {
  const agent = createAttestationAgent({ tcti: tpm.tcti })
  await agent.beginRun({
    runtimeDigest: bytes(),
    capsuleHeaderHash: bytes(),
    grantId: bytes(),
    ephemeralPublicKey: bytes(),
  })
  return `0x${Buffer.from(await agent.readRunPcr()).toString('hex')}`
}

describe('executor-node with a TPM', () => {
  it('init refuses a TCTI the agent does not speak, and writes nothing', async () => {
    const bad = join(dir, 'bad')
    const r = await runCli([
      'init',
      '--data-dir',
      bad,
      '--rpc-url',
      anvil.rpcUrl,
      '--tcti',
      'mssim:host=127.0.0.1,port=1',
      '--capsule-registry',
      addresses.capsuleRegistry,
      '--node-registry',
      addresses.nodeRegistry,
      '--access-controller',
      addresses.accessController,
    ])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('error[CONFIG]: --tcti is not a valid tcti')
    for (const f of ['config.json', 'identity.json']) {
      await expect(readFile(join(bad, f))).rejects.toThrow()
    }
  })

  it('register registers the SHA-256 of the record it writes; a second register keeps the AK', async () => {
    const reg = await runCli(['register', '--stake', '0.01', '--json', '--data-dir', execDir])
    expect(reg.stderr).toBe('')
    expect(reg.code).toBe(0)
    const file = join(execDir, 'attestation-record.bin')
    const recordBytes = await readFile(file)
    const hash = createHash('sha256').update(recordBytes).digest()
    expect(Buffer.from(await registeredHash())).toEqual(hash)
    expect(JSON.parse(reg.stdout).attestationKeyHash).toBe(`0x${hash.toString('hex')}`)
    const record = decodeAttestationRecord(recordBytes)
    // the record's AK is the one the TPM holds
    const keys = await createAttestationAgent({ tcti: tpm.tcti }).provision()
    expect(Buffer.from(keys.akPublic)).toEqual(Buffer.from(record.akPublic))

    // Again: the chain refuses the second registration, the TPM and the record are untouched.
    const twice = await runCli(['register', '--stake', '0.01', '--data-dir', execDir])
    expect(twice.code).toBe(1)
    expect(twice.stderr).toContain('AlreadyRegistered')
    expect(await readFile(file)).toEqual(recordBytes)
    const again = await createAttestationAgent({ tcti: tpm.tcti }).provision()
    expect(Buffer.from(again.akPublic)).toEqual(Buffer.from(record.akPublic))
  }, 120_000)

  it('serve answers attest challenges: the before-quote passes the release gate; another grant or key does not', async () => {
    const { lines, waitFor, stop } = serveProcess()
    let verifier: DigicapNode | undefined
    try {
      const attesting = await waitFor('attesting')
      const started = await waitFor('started')
      const onChain = await registeredHash()
      expect(attesting.attestationKeyHash).toBe(`0x${Buffer.from(onChain).toString('hex')}`)
      verifier = await createDigicapNode()
      const peer = multiaddr((started.addresses as string[])[0] as string)
      const grantId = bytes()
      const ephemeralKey = bytes()
      // The gate with the record the executor sends, checked against the on-chain hash.
      const clock = await requireAttestedRelease(verifier.libp2p, {
        peer,
        grantId,
        ephemeralKey,
        registeredHash: onChain,
      })
      expect(clock.resetCount).toBeGreaterThanOrEqual(0)
      // A hash that is not the registered one: refused.
      await expect(
        requireAttestedRelease(verifier.libp2p, {
          peer,
          grantId,
          ephemeralKey,
          registeredHash: bytes(),
        }),
      ).rejects.toBeInstanceOf(AttestationRefusedError)

      // Evidence for one grant and key is no evidence for another grant or another key.
      const response = await requestAttestation(verifier.libp2p, peer, { grantId, ephemeralKey })
      const record = decodeAttestationRecord(response.record as Uint8Array)
      const expected = {
        phase: 'before' as const,
        attestationKey: record,
        bootPcrs: record.bootPcrs,
      }
      expect(() => verifyAttestation(response, expected)).not.toThrow()
      for (const other of [
        { grantId: bytes(), ephemeralPublicKey: ephemeralKey },
        { grantId, ephemeralPublicKey: bytes() },
      ]) {
        const qualifyingData = quoteBinding({ nonce: response.nonce, ...other })
        let err: unknown
        try {
          verifyAttestation({ ...response, qualifyingData }, expected)
        } catch (e) {
          err = e
        }
        expect(err).toBeInstanceOf(QuoteVerificationError)
        expect((err as QuoteVerificationError).code).toBe('QUOTE_NONCE')
      }
    } finally {
      await verifier?.stop()
    }
    expect(await stop()).toBe(0)
    expect(lines().at(-1)?.event).toBe('stopped')
  }, 180_000)
})

describe('PCR 23 after a crashed run', () => {
  it('serve keeps and reports it (verifiers see it); reset-run-pcr or serve --reset-run-pcr clears it, printing what it held', async () => {
    const onChain = await registeredHash()
    const challenge = (peer: string) =>
      requireAttestedRelease(verifier.libp2p, {
        peer: multiaddr(peer),
        grantId: bytes(),
        ephemeralKey: bytes(),
        registeredHash: onChain,
      })
    const verifier = await createDigicapNode()
    try {
      const held = await crashedRun()
      expect(held).not.toBe(`0x${'00'.repeat(32)}`)
      // A restart does not erase the crashed run: the daemon says so, and its before-quote fails.
      const first = serveProcess()
      try {
        expect(await first.waitFor('run-pcr-not-reset')).toEqual({
          event: 'run-pcr-not-reset',
          value: held,
        })
        const started = await first.waitFor('started')
        const err = await challenge((started.addresses as string[])[0] as string).catch(
          (e: unknown) => e,
        )
        expect(err).toBeInstanceOf(AttestationRefusedError)
        // The restarted agent's event log is empty: it does not replay to the crashed run's
        // PCR 23, the first check that sees it (a log that did would fail QUOTE_RUN_PCR).
        expect((err as AttestationRefusedError).details).toMatchObject({
          reason: 'evidence',
          check: 'QUOTE_EVENT_LOG',
        })
      } finally {
        expect(await first.stop()).toBe(0)
      }
      // The explicit command resets it and prints the value it cleared.
      const reset = await runCli(['reset-run-pcr', '--json', '--data-dir', execDir])
      expect(reset.stderr).toBe('')
      expect(JSON.parse(reset.stdout)).toEqual({
        ok: true,
        command: 'reset-run-pcr',
        event: 'run-pcr-reset',
        previous: held,
        wasAtReset: false,
      })
      const agent = createAttestationAgent({ tcti: tpm.tcti })
      expect(Buffer.from(await agent.readRunPcr())).toEqual(Buffer.alloc(32))

      // Or at start, opt-in: the next crash is cleared by serve --reset-run-pcr.
      const again = await crashedRun()
      const second = serveProcess(['--reset-run-pcr'])
      try {
        expect(await second.waitFor('run-pcr-reset')).toEqual({
          event: 'run-pcr-reset',
          previous: again,
          wasAtReset: false,
        })
        const started = await second.waitFor('started')
        await expect(
          challenge((started.addresses as string[])[0] as string),
        ).resolves.toHaveProperty('resetCount')
      } finally {
        expect(await second.stop()).toBe(0)
      }
    } finally {
      await verifier.stop()
    }
  }, 240_000)

  it('reset-run-pcr on a node without a TPM is a CONFIG error naming the fix', async () => {
    const plain = join(dir, 'plain')
    const init = await runCli([
      'init',
      '--data-dir',
      plain,
      '--rpc-url',
      anvil.rpcUrl,
      '--capsule-registry',
      addresses.capsuleRegistry,
      '--node-registry',
      addresses.nodeRegistry,
      '--access-controller',
      addresses.accessController,
    ])
    expect(init.code).toBe(0)
    const r = await runCli(['reset-run-pcr', '--data-dir', plain])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('error[CONFIG]: This node has no TPM in its config')
    expect(r.stderr).toContain('init --tcti')
  }, 60_000)
})
