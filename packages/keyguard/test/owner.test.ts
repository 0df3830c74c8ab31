import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ed25519 } from '@noble/curves/ed25519.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createKeyStore,
  deriveOwnerIdentity,
  generateMnemonic,
  initOwner,
  type Logger,
  readOwner,
  recoverKeys,
  restoreOwner,
  type Sealer,
  softwareSealer,
  unwrapOwnerEthereumKey,
  unwrapOwnerSecrets,
} from '../src/index.ts'
import { expectCode } from './compliance.ts'

const quiet: Logger = { info: () => undefined, warn: () => undefined }
const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk'
let root: string
let n = 0
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kg-owner-'))
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})
const sealer = () =>
  softwareSealer({
    keyFile: join(root, `s${++n}`, 'k.pem'),
    allowInsecure: true,
    createIfMissing: true,
    logger: quiet,
  })
const path = () => join(root, `o${++n}`, 'owner.json')

describe('owner file', () => {
  it('init writes public parts in clear and secrets only wrapped, 0600', async () => {
    const p = path()
    const s = sealer()
    const { mnemonic, owner } = await initOwner({ path: p, sealer: s })
    expect(mnemonic.split(' ')).toHaveLength(24)
    const id = await deriveOwnerIdentity(mnemonic)
    expect(owner.address).toBe(id.address)
    expect(owner.operatorAddress).toBe(id.operatorAddress)
    expect(owner.recoveryPublicKey).toEqual(id.recoveryKeyPair.publicKey)
    expect(owner.libp2pPublicKey).toEqual(ed25519.getPublicKey(id.libp2pSeed))
    expect(await readOwner(p)).toEqual(owner)
    expect((await stat(p)).mode & 0o777).toBe(0o600)
    const text = await readFile(p, 'utf8')
    const secretsOf = [
      id.ethereumPrivateKey,
      id.operatorPrivateKey,
      id.libp2pSeed,
      id.recoveryKeyPair.privateKey,
    ]
    for (const secret of secretsOf) {
      expect(text).not.toContain(Buffer.from(secret).toString('hex'))
      expect(text).not.toContain(Buffer.from(secret).toString('base64'))
    }
    expect(text).not.toContain(mnemonic.split(' ').slice(0, 2).join(' '))
    const secrets = await unwrapOwnerSecrets(p, s)
    expect(secrets.ethereumPrivateKey).toEqual(id.ethereumPrivateKey)
    expect(secrets.libp2pSeed).toEqual(id.libp2pSeed)
    expect(secrets.operatorPrivateKey).toEqual(id.operatorPrivateKey)
    expect(JSON.parse(text).version).toBe(2)
  })

  it('still reads a version-1 file (no operator); restoreOwner from the words upgrades it', async () => {
    const p = path()
    const s = sealer()
    const { mnemonic } = await initOwner({ path: p, sealer: s })
    const {
      operatorAddress: _a,
      operatorPrivateKey: _k,
      ...v1
    } = JSON.parse(await readFile(p, 'utf8'))
    await writeFile(p, JSON.stringify({ ...v1, version: 1 }))
    const old = await readOwner(p)
    expect(old?.operatorAddress).toBeUndefined()
    const secrets = await unwrapOwnerSecrets(p, s)
    expect(secrets.operatorPrivateKey).toBeUndefined()
    expect(secrets.ethereumPrivateKey).toHaveLength(32)
    // A version-1 file with the operator fields is malformed.
    await writeFile(p, JSON.stringify({ ...v1, version: 1, operatorAddress: old?.address }))
    expect((await expectCode(readOwner(p), 'KEY_STORE_CORRUPT')).details.reason).toBe(
      'unknown-field',
    )
    await writeFile(p, JSON.stringify({ ...v1, version: 1 }))
    await restoreOwner({ mnemonic, path: p, sealer: s })
    const id = await deriveOwnerIdentity(mnemonic)
    expect((await readOwner(p))?.operatorAddress).toBe(id.operatorAddress)
    expect((await readOwner(p))?.createdAt).toBe(old?.createdAt)
    expect((await unwrapOwnerSecrets(p, s)).operatorPrivateKey).toEqual(id.operatorPrivateKey)
  })

  it('init takes given words, and refuses a second init with KEY_EXISTS', async () => {
    const p = path()
    const s = sealer()
    const { owner } = await initOwner({ path: p, sealer: s, mnemonic: ANVIL_MNEMONIC })
    expect(owner.address).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266')
    await expectCode(initOwner({ path: p, sealer: s }), 'KEY_EXISTS')
    expect((await readOwner(p))?.address).toBe(owner.address)
    expect(await readOwner(join(root, 'nowhere.json'))).toBeUndefined()
  })

  it('fails with UNWRAP for another sealer, and KEY_STORE_CORRUPT for a missing file', async () => {
    const p = path()
    await initOwner({ path: p, sealer: sealer() })
    await expectCode(unwrapOwnerSecrets(p, sealer()), 'UNWRAP')
    expect(
      (await expectCode(unwrapOwnerSecrets(path(), sealer()), 'KEY_STORE_CORRUPT')).details.reason,
    ).toBe('missing')
  })

  it('detects a swapped file: secrets that do not match the public parts', async () => {
    const s = sealer()
    const [a, b] = [path(), path()]
    await initOwner({ path: a, sealer: s })
    await initOwner({ path: b, sealer: s })
    const fileA = JSON.parse(await readFile(a, 'utf8'))
    const fileB = JSON.parse(await readFile(b, 'utf8'))
    await writeFile(a, JSON.stringify({ ...fileA, ethereumPrivateKey: fileB.ethereumPrivateKey }))
    expect((await expectCode(unwrapOwnerSecrets(a, s), 'KEY_STORE_CORRUPT')).details.reason).toBe(
      'secret-mismatch',
    )
    await writeFile(a, JSON.stringify({ ...fileA, operatorPrivateKey: fileB.operatorPrivateKey }))
    expect((await expectCode(unwrapOwnerSecrets(a, s), 'KEY_STORE_CORRUPT')).details.reason).toBe(
      'secret-mismatch',
    )
  })

  it('unwrapOwnerEthereumKey unwraps the Ethereum key alone, checked like the rest', async () => {
    const s = sealer()
    const [a, b] = [path(), path()]
    const { mnemonic } = await initOwner({ path: a, sealer: s })
    await initOwner({ path: b, sealer: s })
    const id = await deriveOwnerIdentity(mnemonic)
    // the sealer's unwraps, counted: each one is a TPM command on a Pi
    const unwrapped: string[] = []
    const counting: Sealer = {
      publicKey: () => s.publicKey(),
      wrap: (k) => s.wrap(k),
      describe: () => s.describe(),
      unwrap: async (w) => {
        unwrapped.push(Buffer.from(w.ciphertext).toString('base64'))
        return s.unwrap(w)
      },
    }
    const file = JSON.parse(await readFile(a, 'utf8'))
    const key = await unwrapOwnerEthereumKey(a, counting)
    expect(key).toEqual(id.ethereumPrivateKey)
    expect(unwrapped).toEqual([file.ethereumPrivateKey.ciphertext])
    // unwrapOwnerSecrets, for comparison, unwraps all three
    unwrapped.length = 0
    await unwrapOwnerSecrets(a, counting)
    expect(unwrapped).toHaveLength(3)

    // a swapped key, another sealer, a missing file: the same errors as unwrapOwnerSecrets
    const fileB = JSON.parse(await readFile(b, 'utf8'))
    await writeFile(a, JSON.stringify({ ...file, ethereumPrivateKey: fileB.ethereumPrivateKey }))
    expect(
      (await expectCode(unwrapOwnerEthereumKey(a, s), 'KEY_STORE_CORRUPT')).details.reason,
    ).toBe('secret-mismatch')
    await writeFile(a, JSON.stringify(file))
    await expectCode(unwrapOwnerEthereumKey(a, sealer()), 'UNWRAP')
    expect(
      (await expectCode(unwrapOwnerEthereumKey(path(), s), 'KEY_STORE_CORRUPT')).details.reason,
    ).toBe('missing')
  })

  it('rejects malformed owner files with KEY_STORE_CORRUPT', async () => {
    const p = path()
    await initOwner({ path: p, sealer: sealer() })
    const good = JSON.parse(await readFile(p, 'utf8'))
    const cases: [unknown, string][] = [
      [{ ...good, version: 3 }, 'unknown-version'],
      [{ ...good, address: '0x1234' }, 'bad-field'],
      [{ ...good, operatorAddress: 7 }, 'bad-field'],
      [{ ...good, operatorPrivateKey: undefined }, 'missing-field'],
      [{ ...good, recoveryPublicKey: 'ab' }, 'bad-field'],
      [{ ...good, libp2pSeed: { ...good.libp2pSeed, scheme: 'x' } }, 'unknown-scheme'],
      [{ ...good, extra: 1 }, 'unknown-field'],
      ['[]', 'not-object'],
    ]
    for (const [content, reason] of cases) {
      await writeFile(p, typeof content === 'string' ? content : JSON.stringify(content))
      expect((await expectCode(readOwner(p), 'KEY_STORE_CORRUPT')).details.reason).toBe(reason)
    }
  })

  it("recovery rewrites the owner file for the new sealer, and refuses another owner's words", async () => {
    const p = path()
    const { mnemonic } = await initOwner({ path: p, sealer: sealer() })
    const store = await createKeyStore(join(root, `ks${++n}`))
    const fresh = sealer()
    await expectCode(
      recoverKeys({ mnemonic: generateMnemonic(), store, newSealer: fresh, ownerPath: p }),
      'RECOVERY_KEY_MISMATCH',
    )
    await expectCode(
      restoreOwner({ mnemonic: generateMnemonic(), path: p, sealer: fresh }),
      'RECOVERY_KEY_MISMATCH',
    )
    const before = await readOwner(p)
    const result = await recoverKeys({ mnemonic, store, newSealer: fresh, ownerPath: p })
    expect(result).toEqual({ recovered: [], failed: [] })
    expect(await readOwner(p)).toEqual(before)
    expect((await unwrapOwnerSecrets(p, fresh)).ethereumPrivateKey).toHaveLength(32)
    // A corrupt owner file is rebuilt from the words.
    await writeFile(p, 'garbage')
    await restoreOwner({ mnemonic, path: p, sealer: fresh })
    expect((await readOwner(p))?.address).toBe(before?.address)
  })
})
