import { createPrivateKey, createPublicKey, hkdfSync, pbkdf2Sync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  deriveOwnerIdentity,
  ethereumAddress,
  generateMnemonic,
  InvalidMnemonicError,
  normalizeMnemonic,
  wipeOwnerIdentity,
} from '../src/index.ts'
import { expectCode } from './compliance.ts'

/** Hardhat/anvil default account 0 (public, documented in both projects' READMEs). */
const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk'
const ANVIL_ADDRESS = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266'
const ANVIL_PRIVATE_KEY = 'ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80'

/** The documented derivation, recomputed with node:crypto only (independent of @scure/@noble). */
function reference(mnemonic: string, passphrase = '') {
  const seed = pbkdf2Sync(
    mnemonic.normalize('NFKD'),
    `mnemonic${passphrase}`.normalize('NFKD'),
    2048,
    64,
    'sha512',
  )
  const hkdf = (info: string) => Buffer.from(hkdfSync('sha256', seed, Buffer.alloc(0), info, 32))
  const recoveryPrivate = hkdf('digicap/recovery-x25519/v1')
  const jwk = createPublicKey(
    createPrivateKey({
      key: { kty: 'OKP', crv: 'X25519', d: recoveryPrivate.toString('base64url'), x: '' },
      format: 'jwk',
    }),
  ).export({ format: 'jwk' })
  return {
    recoveryPrivate,
    recoveryPublic: Buffer.from(jwk.x!, 'base64url'),
    libp2pSeed: hkdf('digicap/libp2p-ed25519/v1'),
  }
}

describe('owner identity derivation', () => {
  it("derives the anvil account from the anvil mnemonic (BIP-44 m/44'/60'/0'/0/0)", async () => {
    const id = await deriveOwnerIdentity(ANVIL_MNEMONIC)
    expect(id.address).toBe(ANVIL_ADDRESS)
    expect(Buffer.from(id.ethereumPrivateKey).toString('hex')).toBe(ANVIL_PRIVATE_KEY)
    expect(ethereumAddress(id.ethereumPrivateKey)).toBe(ANVIL_ADDRESS)
  })

  it("derives the keyguard operator as anvil's second account (m/44'/60'/0'/0/1)", async () => {
    const id = await deriveOwnerIdentity(ANVIL_MNEMONIC)
    expect(id.operatorAddress).toBe('0x70997970C51812dc3A010C7d01b50e0d17dc79C8')
    expect(Buffer.from(id.operatorPrivateKey).toString('hex')).toBe(
      '59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
    )
    expect(id.operatorAddress).not.toBe(id.address)
  })

  it('derives the recovery key and libp2p seed exactly as documented (HKDF-SHA256 over the seed)', async () => {
    for (const [words, passphrase] of [
      [ANVIL_MNEMONIC, ''],
      [generateMnemonic(), ''],
      [generateMnemonic(), 'correct horse'],
    ] as const) {
      const id = await deriveOwnerIdentity(words, passphrase)
      const ref = reference(words, passphrase)
      expect(Buffer.from(id.recoveryKeyPair.privateKey).equals(ref.recoveryPrivate)).toBe(true)
      expect(Buffer.from(id.recoveryKeyPair.publicKey).equals(ref.recoveryPublic)).toBe(true)
      expect(Buffer.from(id.libp2pSeed).equals(ref.libp2pSeed)).toBe(true)
      expect(id.recoveryKeyId).toMatch(/^[0-9a-f]{64}$/)
    }
  })

  it('is deterministic, separates its outputs, and depends on the passphrase', async () => {
    const words = generateMnemonic()
    const [a, b, c] = await Promise.all([
      deriveOwnerIdentity(words),
      deriveOwnerIdentity(words),
      deriveOwnerIdentity(words, 'x'),
    ])
    expect(a.address).toBe(b.address)
    expect(a.recoveryKeyId).toBe(b.recoveryKeyId)
    expect(c.address).not.toBe(a.address)
    expect(c.recoveryKeyId).not.toBe(a.recoveryKeyId)
    expect(Buffer.from(a.libp2pSeed).equals(Buffer.from(a.recoveryKeyPair.privateKey))).toBe(false)
  })

  it('generates 24-word mnemonics that validate and differ', () => {
    const a = generateMnemonic()
    expect(a.split(' ')).toHaveLength(24)
    expect(normalizeMnemonic(a)).toBe(a)
    expect(generateMnemonic()).not.toBe(a)
  })

  it('accepts words typed from paper: upper case, extra spaces, newlines', async () => {
    const words = generateMnemonic()
    const typed = `  ${words.toUpperCase().split(' ').join('  \n ')}  `
    expect(normalizeMnemonic(typed)).toBe(words)
    expect((await deriveOwnerIdentity(typed)).address).toBe(
      (await deriveOwnerIdentity(words)).address,
    )
  })

  it('rejects bad mnemonics with INVALID_MNEMONIC', async () => {
    const words = generateMnemonic().split(' ')
    const swapped = [...words]
    ;[swapped[0], swapped[1]] = [swapped[1]!, swapped[0]!]
    const bad = [
      '',
      'test',
      words.slice(0, 23).join(' '),
      [...words.slice(0, 23), 'notaword'].join(' '),
      [...words, 'abandon'].join(' '),
      // 'abandon' × 24 fails the checksum.
      Array(24).fill('abandon').join(' '),
      42 as unknown as string,
    ]
    if (swapped.join(' ') !== words.join(' ') && !safeValid(swapped.join(' ')))
      bad.push(swapped.join(' '))
    // The message's own text (its hint names the "list", the word "order") is not a leak: only
    // words it does not hold for every input count (a random word was "list" once).
    let fixed = ''
    for (const m of ['x', 42 as unknown as string])
      fixed += (await expectCode(deriveOwnerIdentity(m), 'INVALID_MNEMONIC')).message
    const secret = words.filter((w) => !fixed.includes(w))
    expect(secret.length).toBeGreaterThan(12)
    for (const m of bad) {
      const err = await expectCode(deriveOwnerIdentity(m), 'INVALID_MNEMONIC')
      expect(err).toBeInstanceOf(InvalidMnemonicError)
      for (const w of secret) expect(err.message).not.toContain(w)
    }
  })

  it('wipes secrets on request', async () => {
    const id = await deriveOwnerIdentity(generateMnemonic())
    wipeOwnerIdentity(id)
    for (const secret of [
      id.ethereumPrivateKey,
      id.operatorPrivateKey,
      id.recoveryKeyPair.privateKey,
      id.libp2pSeed,
    ]) {
      expect(secret.every((b) => b === 0)).toBe(true)
    }
  })
})

function safeValid(m: string): boolean {
  try {
    normalizeMnemonic(m)
    return true
  } catch {
    return false
  }
}
