import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createKeyStore,
  deriveOwnerIdentity,
  generateMnemonic,
  initOwner,
  type Logger,
  readOwner,
  recoverKeys,
  softwareSealer,
  tpm2Sealer,
  unwrapDataKey,
  unwrapOwnerSecrets,
  unwrapWithRecoveryKey,
  wrapDataKey,
  wrapToRecoveryKey,
} from '../src/index.ts'
import { startSwtpm } from '../src/testing.ts'
import { expectCode } from './compliance.ts'

const quiet: Logger = { info: () => undefined, warn: () => undefined }
let root: string
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kg-recover-'))
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})

/** A stand-in capsule: AES-256-GCM under the data key (capsule-core's format is not needed here). */
function seal(dataKey: Uint8Array, plaintext: string) {
  const iv = randomBytes(12)
  const c = createCipheriv('aes-256-gcm', dataKey, iv)
  const ct = Buffer.concat([c.update(plaintext), c.final()])
  return { iv, ct, tag: c.getAuthTag() }
}
function open(dataKey: Uint8Array, box: ReturnType<typeof seal>): string {
  const d = createDecipheriv('aes-256-gcm', dataKey, box.iv)
  d.setAuthTag(box.tag)
  return Buffer.concat([d.update(box.ct), d.final()]).toString()
}

describe('recovery: kill the TPM, recover from the paper words, open an old capsule', () => {
  it('re-wraps every key from a dead swtpm to a new one', async () => {
    const store = await createKeyStore(join(root, 'keys'))
    const ownerPath = join(root, 'owner.json')

    // TPM A: init (mnemonic shown once, owner file), seal three capsules.
    const tpmA = await startSwtpm()
    const sealerA = tpm2Sealer({ tcti: tpmA.tcti, createIfMissing: true })
    const { mnemonic: words } = await initOwner({ path: ownerPath, sealer: sealerA })
    const owner = await deriveOwnerIdentity(words)
    const capsules = new Map<string, ReturnType<typeof seal>>()
    for (let i = 0; i < 3; i++) {
      const dataKey = new Uint8Array(randomBytes(32))
      const capsuleId = `0x${randomBytes(32).toString('hex')}`
      capsules.set(capsuleId, seal(dataKey, `capsule ${i}`))
      await store.put({
        capsuleId,
        wrappedKeys: await wrapDataKey(dataKey, {
          sealer: sealerA,
          recoveryPublicKey: owner.recoveryKeyPair.publicKey,
        }),
        metadata: { n: String(i) },
      })
      dataKey.fill(0)
    }
    const [firstId, firstBox] = [...capsules][0]!
    expect(
      open(await unwrapDataKey((await store.get(firstId))!.wrappedKeys, sealerA), firstBox),
    ).toBe('capsule 0')

    // The TPM dies: stop it and delete its state.
    await tpmA.stop()
    await expect(readdir(tpmA.stateDir)).rejects.toThrow()

    // TPM B: a new, empty TPM. The old wraps are useless to it.
    const tpmB = await startSwtpm()
    try {
      const sealerB = tpm2Sealer({ tcti: tpmB.tcti, createIfMissing: true })
      await expectCode(unwrapDataKey((await store.get(firstId))!.wrappedKeys, sealerB), 'UNWRAP')

      // Wrong words change nothing.
      await expectCode(
        recoverKeys({ mnemonic: generateMnemonic(), store, newSealer: sealerB }),
        'RECOVERY_KEY_MISMATCH',
      )
      const progress: number[] = []
      await expectCode(unwrapOwnerSecrets(ownerPath, sealerB), 'UNWRAP')
      const result = await recoverKeys({
        mnemonic: words.toUpperCase(),
        store,
        newSealer: sealerB,
        ownerPath,
        onProgress: (done) => progress.push(done),
      })
      expect(result.failed).toEqual([])
      expect(result.recovered.sort()).toEqual([...capsules.keys()].sort())
      expect(progress).toEqual([1, 2, 3])

      for (const [capsuleId, box] of capsules) {
        const record = (await store.get(capsuleId))!
        expect(record.wrappedKeys.map((w) => w.scheme)).toEqual([
          'tpm2-rsa-oaep-sha256',
          'hpke-x25519-recovery',
        ])
        expect(record.metadata.n).toBeDefined()
        const dataKey = await unwrapDataKey(record.wrappedKeys, sealerB)
        expect(open(dataKey, box)).toMatch(/^capsule \d$/)
      }
      const secrets = await unwrapOwnerSecrets(ownerPath, sealerB)
      expect(
        Buffer.from(secrets.ethereumPrivateKey).equals(Buffer.from(owner.ethereumPrivateKey)),
      ).toBe(true)
      expect((await readOwner(ownerPath))?.address).toBe(owner.address)
      // Running recovery again is harmless (an interrupted recovery can be re-run).
      const again = await recoverKeys({ mnemonic: words, store, newSealer: sealerB })
      expect(again.recovered).toHaveLength(3)
      expect(
        open(await unwrapDataKey((await store.get(firstId))!.wrappedKeys, sealerB), firstBox),
      ).toBe('capsule 0')
    } finally {
      await tpmB.stop()
    }
  })
})

describe('wrapDataKey / recoverKeys with software sealers', () => {
  const sealer = (name: string) =>
    softwareSealer({
      keyFile: join(root, name, 'k.pem'),
      allowInsecure: true,
      createIfMissing: true,
      logger: quiet,
    })

  it('wraps to the sealer and the recovery key; both open', async () => {
    const owner = await deriveOwnerIdentity(generateMnemonic())
    const s = sealer('w1')
    const dataKey = new Uint8Array(randomBytes(32))
    const [bySealer, byRecovery] = await wrapDataKey(dataKey, {
      sealer: s,
      recoveryPublicKey: owner.recoveryKeyPair.publicKey,
    })
    expect(bySealer!.scheme).toBe('software-rsa-oaep-sha256')
    expect(byRecovery).toMatchObject({ scheme: 'hpke-x25519-recovery', keyId: owner.recoveryKeyId })
    expect(await s.unwrap(bySealer!)).toEqual(dataKey)
    expect(await unwrapWithRecoveryKey(byRecovery!, owner.recoveryKeyPair.privateKey)).toEqual(
      dataKey,
    )
  })

  it('fails recovery unwraps with UNWRAP for the wrong key, tampering and truncation', async () => {
    const owner = await deriveOwnerIdentity(generateMnemonic())
    const stranger = await deriveOwnerIdentity(generateMnemonic())
    const w = await wrapToRecoveryKey(new Uint8Array(32).fill(7), owner.recoveryKeyPair.publicKey)
    await expectCode(unwrapWithRecoveryKey(w, stranger.recoveryKeyPair.privateKey), 'UNWRAP')
    const flipped = Uint8Array.from(w.ciphertext)
    flipped[40]! ^= 1
    await expectCode(
      unwrapWithRecoveryKey({ ...w, ciphertext: flipped }, owner.recoveryKeyPair.privateKey),
      'UNWRAP',
    )
    await expectCode(
      unwrapWithRecoveryKey(
        { ...w, ciphertext: w.ciphertext.subarray(0, 47) },
        owner.recoveryKeyPair.privateKey,
      ),
      'UNWRAP',
    )
    await expectCode(
      unwrapWithRecoveryKey(
        { ...w, scheme: 'tpm2-rsa-oaep-sha256' },
        owner.recoveryKeyPair.privateKey,
      ),
      'UNWRAP',
    )
    await expectCode(wrapToRecoveryKey(new Uint8Array(32), new Uint8Array(31)), 'INVALID_ARGUMENT')
  })

  it('reports per-capsule failures and recovers the rest', async () => {
    const words = generateMnemonic()
    const owner = await deriveOwnerIdentity(words)
    const dir = join(root, 'partial')
    const store = await createKeyStore(dir)
    const old = sealer('p-old')
    for (const id of ['a1', 'a2']) {
      await store.put({
        capsuleId: id,
        wrappedKeys: await wrapDataKey(new Uint8Array(32).fill(1), {
          sealer: old,
          recoveryPublicKey: owner.recoveryKeyPair.publicKey,
        }),
      })
    }
    await store.put({ capsuleId: 'a3', wrappedKeys: [await old.wrap(new Uint8Array(32))] })
    const file = join(dir, 'a2.json')
    const { writeFile } = await import('node:fs/promises')
    await writeFile(file, (await readFile(file, 'utf8')).slice(0, 20))
    const result = await recoverKeys({ mnemonic: words, store, newSealer: sealer('p-new') })
    expect(result.recovered).toEqual(['a1'])
    expect(result.failed).toEqual([
      { capsuleId: 'a2', code: 'KEY_STORE_CORRUPT' },
      { capsuleId: 'a3', code: 'RECOVERY_KEY_MISMATCH' },
    ])
  })

  it('finds no copy for a sealer that never wrapped the key', async () => {
    const owner = await deriveOwnerIdentity(generateMnemonic())
    const keys = await wrapDataKey(new Uint8Array(32), {
      sealer: sealer('u1'),
      recoveryPublicKey: owner.recoveryKeyPair.publicKey,
    })
    await expectCode(unwrapDataKey(keys, sealer('u2')), 'UNWRAP')
    await expectCode(
      recoverKeys({
        mnemonic: 'not words',
        store: await createKeyStore(join(root, 'e')),
        newSealer: sealer('u3'),
      }),
      'INVALID_MNEMONIC',
    )
  })
})
