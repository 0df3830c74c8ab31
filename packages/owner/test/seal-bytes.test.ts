/**
 * `sealAndPublish({ data })`: bytes sealed from memory, never written in the clear. The capsule
 * opens to the same bytes, its CID is the store's, the registration names the deployed policy,
 * and the output folder holds nothing but the capsule; a failing add leaves no capsule.
 * A real software sealer and a real on-disk blockstore; the deployer and the registrar are
 * fault injectors (the real deployment runs in policy-address.test.ts).
 */
import { readdirSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  generateDataKey,
  generateX25519KeyPair,
  openCapsule,
  privateKeySigner,
} from '@digicap/capsule-core'
import { softwareSealer, wrapToRecoveryKey } from '@digicap/keyguard/local'
import { openFsCapsuleImporter } from '@digicap/p2p/import'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { sealAndPublish } from '../src/index.ts'

const POLICY = '0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0'
let dir: string
const signer = privateKeySigner(new Uint8Array(32).fill(6))
const recovery = generateX25519KeyPair()
let sealer: ReturnType<typeof softwareSealer>

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'digicap-seal-bytes-'))
  sealer = softwareSealer({
    keyFile: join(dir, 'sealer.pem'),
    allowInsecure: true,
    createIfMissing: true,
  })
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function sealBytes(name: string, data: Uint8Array, put?: () => Promise<string>) {
  const out = join(dir, name)
  await mkdir(out)
  const dataKey = generateDataKey()
  const keys = {
    dataKey,
    wrappedKeys: [await sealer.wrap(dataKey), await wrapToRecoveryKey(dataKey, recovery.publicKey)],
  }
  const store = await openFsCapsuleImporter(join(dir, `ipfs-${name}`), { referenceFiles: true })
  const registered: string[] = []
  try {
    const r = await sealAndPublish(
      {
        input: '',
        data,
        output: join(out, 'capsule'),
        policy: {
          address: POLICY,
        },
        chainId: 31337,
        registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
        keyguardPeerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
        recoveryPublicKey: recovery.publicKey,
        keys,
      },
      {
        signer,
        wrapper: sealer,
        store: put ? { put } : store,
        registrar: {
          register: async (e) => {
            registered.push(e.policy)
            return { transactionHash: '0x01' }
          },
        },
      },
    )
    return { r, out, dataKey, registered }
  } finally {
    await store.close()
  }
}

it('bytes are sealed from memory: the capsule opens to them, and it is the only file written', async () => {
  const data = new TextEncoder().encode('the owner’s bytes, sealed from memory\n'.repeat(40_000))
  const { r, out, dataKey, registered } = await sealBytes('ok', data)
  expect(readdirSync(out)).toEqual(['capsule'])
  const capsule = await readFile(join(out, 'capsule'))
  expect(r.capsuleSize).toBe(capsule.length)
  expect(r.plaintextSize).toBe(data.length)
  expect(registered).toEqual([POLICY])
  const opened = openCapsule(capsule, { dataKey, owner: signer.address })
  expect(Buffer.from(opened.plaintext).equals(Buffer.from(data))).toBe(true)
  expect(opened.parsed.header.policy.policy).toBe(POLICY)
})

it('an add that fails leaves no capsule and no temp file; data with a file input is refused', async () => {
  const data = new Uint8Array(1000).fill(4)
  await expect(
    sealBytes('add-fails', data, async () => {
      throw new Error('store down')
    }),
  ).rejects.toThrow('store down')
  expect(readdirSync(join(dir, 'add-fails'))).toEqual([])
  await expect(
    sealAndPublish(
      {
        input: join(dir, 'some-file'),
        data,
        output: join(dir, 'x.capsule'),
        policy: { address: POLICY },
        chainId: 31337,
        registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
        keyguardPeerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
        recoveryPublicKey: recovery.publicKey,
      },
      {
        signer,
        wrapper: sealer,
        store: { put: async () => 'never' },
        registrar: { register: async () => ({ transactionHash: '0x01' }) },
      },
    ),
  ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
})
