/**
 * The executor node (`@digicap/executor/node`) on real parts: anvil with Digicap deployed,
 * helia/libp2p on loopback, a swtpm for the attestation key. Registration checks funds before
 * sending and registers the attestation record's hash; a started node answers attest
 * challenges, a stopped one no longer; a record names its TPM.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { attestationRecordHash, requireAttestedRelease } from '@digicap/attestation'
import { createAttestationAgent } from '@digicap/attestation/agent'
import { connectDigicap, type DigicapAddresses, deployDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { getBytes, parseEther, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createReceiverKeyFile,
  type ExecutorNode,
  loadNodeAttestation,
  NODE_ROLES,
  type OpenExecutorNodeParameters,
  openExecutorNode,
  readReceiverKeyFile,
} from '../src/node/index.ts'

const bytes = () => new Uint8Array(randomBytes(32))

let anvil: Anvil
let tpm: Swtpm
let addresses: DigicapAddresses
let dir: string
let funder: Wallet

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'executor-node-'))
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
  const [deployer, f] = anvil.signers as Wallet[]
  funder = f as Wallet
  addresses = await deployDigicap(deployer as Wallet, {
    minStake: parseEther('0.01'),
    grantWindow: 600,
    disputeWindow: 3600,
    unbondingDelay: 3600,
  })
}, 120_000)

afterAll(async () => {
  await anvil?.stop()
  await tpm?.stop()
  await rm(dir, { recursive: true, force: true })
})

function params(accountKey: Uint8Array): OpenExecutorNodeParameters {
  return {
    rpcUrl: anvil.rpcUrl,
    chainId: 31337,
    contracts: addresses,
    accountKey,
    libp2pSeed: bytes(),
    start: false,
  }
}

const registeredHash = async (address: string): Promise<Uint8Array> =>
  getBytes(
    (await connectDigicap(addresses, anvil.provider).nodeRegistry.getNode(address))
      .attestationKeyHash,
  )

describe('executor node', () => {
  it('register from an unfunded account: INSUFFICIENT_FUNDS naming what to send, nothing sent', async () => {
    const en = await openExecutorNode(params(bytes()))
    try {
      const err = await en.register({ stake: parseEther('0.01') }).catch((e: unknown) => e)
      expect(err).toMatchObject({
        code: 'INSUFFICIENT_FUNDS',
        details: { address: en.address, balance: '0.0 ETH', stake: '0.01 ETH' },
      })
      expect(await en.chain.isRegistered(en.address)).toBe(false)
    } finally {
      await en.stop()
    }
  })

  it('without a TPM registers the zero hash; a receiver needs the chain grants, which open gives', async () => {
    const key = bytes()
    const address = new Wallet(`0x${Buffer.from(key).toString('hex')}`).address
    await (await funder.sendTransaction({ to: address, value: parseEther('1') })).wait()
    const en = await openExecutorNode(params(key))
    try {
      const r = await en.register({ roles: NODE_ROLES.executor, stake: parseEther('0.01') })
      expect(r.transaction).toMatch(/^0x[0-9a-f]{64}$/)
      expect(await registeredHash(address)).toEqual(new Uint8Array(32))
      expect(en.attestation).toBeUndefined()
      const receiver = en.receiver(bytes())
      await receiver.start()
      await receiver.stop()
    } finally {
      await en.stop()
    }
  })

  describe('with a TPM', () => {
    let en: ExecutorNode
    let verifier: DigicapNode
    const recordFile = () => join(dir, 'attestation-record.bin')

    beforeAll(async () => {
      const key = bytes()
      const address = new Wallet(`0x${Buffer.from(key).toString('hex')}`).address
      await (await funder.sendTransaction({ to: address, value: parseEther('1') })).wait()
      const agent = createAttestationAgent({ tcti: tpm.tcti })
      const attestation = await loadNodeAttestation({ agent, recordFile: recordFile() })
      en = await openExecutorNode({ ...params(key), attestation })
      verifier = await createDigicapNode()
    }, 120_000)

    afterAll(async () => {
      await en?.stop()
      await verifier?.stop()
    })

    it('registers the SHA-256 of the record it wrote; loading again keeps the record', async () => {
      const recordBytes = await readFile(recordFile())
      expect(en.attestation?.hash).toEqual(attestationRecordHash(recordBytes))
      const r = await en.register({ stake: parseEther('0.01') })
      expect(r.attestationKeyHash).toEqual(en.attestation?.hash)
      expect(await registeredHash(en.address)).toEqual(en.attestation?.hash)
      // Again, by TCTI (the stock agent): the same keys, the same record.
      const again = await loadNodeAttestation({ tcti: tpm.tcti, recordFile: recordFile() })
      expect(again.hash).toEqual(en.attestation?.hash)
      expect(await readFile(recordFile())).toEqual(recordBytes)
    }, 120_000)

    it('started, it answers attest challenges that pass the release gate; stopped, it does not', async () => {
      const peer = multiaddr(en.node.multiaddrs()[0] as string)
      const gate = () =>
        requireAttestedRelease(
          verifier.libp2p,
          { peer, grantId: bytes(), ephemeralKey: bytes(), registeredHash: en.attestation!.hash },
          { timeout: 10_000 },
        )
      await expect(gate()).rejects.toMatchObject({ details: { reason: 'unreachable' } })
      await en.start()
      expect(en.executor.started).toBe(true)
      expect((await gate()).resetCount).toBeGreaterThanOrEqual(0)
      await en.stop()
      expect(en.executor.started).toBe(false)
      await expect(gate()).rejects.toMatchObject({ details: { reason: 'unreachable' } })
    }, 120_000)

    it('a record that names keys another TPM holds is a CONFIG error', async () => {
      const other = await startSwtpm()
      try {
        const agent = createAttestationAgent({ tcti: other.tcti })
        await expect(
          loadNodeAttestation({ agent, recordFile: recordFile() }),
        ).rejects.toMatchObject({
          code: 'CONFIG',
          shortMessage: 'The attestation record names keys this TPM does not hold',
        })
        const garbage = join(dir, 'garbage.bin')
        await writeFile(garbage, 'not a record')
        await expect(loadNodeAttestation({ agent, recordFile: garbage })).rejects.toMatchObject({
          code: 'CONFIG',
          shortMessage: 'Cannot read the attestation record',
        })
      } finally {
        await other.stop()
      }
    }, 120_000)
  })

  it('a receiver key file: written 0600 once, read back; a bad file is a CONFIG error', async () => {
    const file = join(dir, 'receiver.key')
    const publicKey = await createReceiverKeyFile(file)
    expect(publicKey.length).toBe(32)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await readReceiverKeyFile(file)).length).toBe(32)
    await expect(createReceiverKeyFile(file)).rejects.toMatchObject({ code: 'EEXIST' })
    await writeFile(file, 'short')
    await expect(readReceiverKeyFile(file)).rejects.toMatchObject({ code: 'CONFIG' })
    await expect(readReceiverKeyFile(join(dir, 'none'))).rejects.toMatchObject({ code: 'CONFIG' })
  })
})
