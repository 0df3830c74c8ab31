/**
 * `rebuildKeyStore` against real capsule headers (capsule-core, signed by the owner), a real
 * software sealer and key store. The chain and the IPFS peer are components; here they lie or
 * fail on purpose (fault injection) to check that each capsule fails alone, with its reason.
 * The whole path on real parts (anvil, swtpm, helia) is pi-node's `recover-new-pi` test.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createCapsuleHeader,
  generateDataKey,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
  sealCapsule,
  signCapsuleHeader,
} from '@digicap/capsule-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type CapsuleDirectory,
  createKeyStore,
  deriveOwnerIdentity,
  generateMnemonic,
  type OwnedCapsule,
  type OwnerIdentity,
  rebuildKeyStore,
  type Sealer,
  softwareSealer,
  unwrapDataKey,
  wrapDataKey,
} from '../src/index.ts'

const quiet = { info: () => undefined, warn: () => undefined }
const PEER = '12D3KooWRzCVDwHUkgdK7eRgnoXbjDAELhxPErjHzbRLguSV1aRt'
let root: string
let sealer: Sealer
let words: string
let owner: OwnerIdentity
let stranger: OwnerIdentity

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kg-rebuild-'))
  sealer = softwareSealer({
    keyFile: join(root, 'new.pem'),
    allowInsecure: true,
    createIfMissing: true,
    logger: quiet,
  })
  words = generateMnemonic()
  owner = await deriveOwnerIdentity(words)
  stranger = await deriveOwnerIdentity(generateMnemonic())
})
afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})

/** A real capsule of `who`, whose header's recovery copy is for `recoveryOf`. */
async function capsule(who: OwnerIdentity, recoveryOf: OwnerIdentity = who) {
  const dataKey = generateDataKey()
  const oldSealer = softwareSealer({
    keyFile: join(root, `old-${Math.random()}.pem`),
    allowInsecure: true,
    createIfMissing: true,
    logger: quiet,
  })
  const sk = await oldSealer.publicKey()
  const plaintext = new TextEncoder().encode('old capsule')
  const header = createCapsuleHeader({
    owner: who.address,
    policy: { chainId: 31337, registry: `0x${'11'.repeat(20)}`, policy: `0x${'22'.repeat(20)}` },
    keyguard: { peerId: PEER, keyId: sk.keyId, wrapScheme: sk.scheme },
    runtime: { kind: 'data' },
    receivers: [],
    wrappedKeys: await wrapDataKey(dataKey, {
      sealer: oldSealer,
      recoveryPublicKey: recoveryOf.recoveryKeyPair.publicKey,
    }),
    dataKey,
    plaintext,
  })
  const bytes = sealCapsule({
    header,
    signature: signCapsuleHeader(header, who.ethereumPrivateKey),
    dataKey,
    plaintext,
  })
  const parsed = parseCapsuleHeader(bytes)
  const entry: OwnedCapsule = {
    capsuleId: `0x${Buffer.from(header.capsuleId).toString('hex')}`,
    cid: `bafy-${Math.random()}`,
    policy: `0x${'22'.repeat(20)}`,
    revoked: false,
    keyguardKeyId: sk.keyId,
    keyguardPeerId: PEER,
  }
  return { entry, parsed, dataKey }
}

const listOf = (capsules: OwnedCapsule[]): CapsuleDirectory => ({
  ownedCapsules: async () => capsules,
})

describe('rebuildKeyStore', () => {
  it('recovers the good capsules and reports each bad one with its own reason', async () => {
    const good = await capsule(owner)
    const revoked = await capsule(owner)
    revoked.entry.revoked = true
    const lost = await capsule(owner)
    const foreign = await capsule(stranger) // a lying peer serves another owner's capsule
    const otherWords = await capsule(owner, stranger) // recovery copy for other words
    const chainFails = await capsule(owner)
    const headers = new Map<string, ParsedCapsuleHeader>(
      [good, revoked, foreign, otherWords, chainFails].map((c) => [c.entry.cid, c.parsed]),
    )
    // The chain says `foreign`'s CID is one of the owner's capsules.
    foreign.entry.capsuleId = `0x${'ab'.repeat(32)}`
    const store = await createKeyStore(join(root, 'keys-1'))
    const updated: string[] = []
    const progress: string[] = []
    const r = await rebuildKeyStore({
      mnemonic: words,
      store,
      sealer,
      peerId: PEER,
      directory: listOf([good, revoked, lost, foreign, otherWords, chainFails].map((c) => c.entry)),
      fetcher: {
        async fetchHeader(cid, { signal }) {
          const h = headers.get(cid)
          if (h) return h
          // No peer has it: wait for the timeout like a bitswap want would.
          await new Promise((_, reject) =>
            signal.addEventListener('abort', () => reject(signal.reason)),
          )
          throw new Error('unreachable')
        },
      },
      recorder: {
        async updateKeyguard(capsuleId) {
          if (capsuleId === chainFails.entry.capsuleId) throw new Error('execution reverted')
          updated.push(capsuleId)
        },
      },
      fetchTimeoutMs: 200,
      onProgress: (done, total, _id, outcome) => progress.push(`${done}/${total} ${outcome}`),
    })
    expect(r.recovered.sort()).toEqual([good.entry.capsuleId, chainFails.entry.capsuleId].sort())
    expect(r.revoked).toEqual([revoked.entry.capsuleId])
    expect(r.keyguardUpdated).toEqual([good.entry.capsuleId])
    expect(r.failed.map((f) => [f.capsuleId, f.reason])).toEqual([
      [lost.entry.capsuleId, 'blocks-not-found'],
      [foreign.entry.capsuleId, 'header-invalid'],
      [otherWords.entry.capsuleId, 'no-recovery-copy'],
      [chainFails.entry.capsuleId, 'chain-update-failed'],
    ])
    expect(r.failed[2]?.code).toBe('RECOVERY_KEY_MISMATCH')
    expect(progress).toHaveLength(6)
    expect(progress.at(-1)).toBe('6/6 failed')
    // The recovered key opens with the new sealer only, and it is the capsule's key.
    const record = await store.get(good.entry.capsuleId)
    expect(await unwrapDataKey(record?.wrappedKeys ?? [], sealer)).toEqual(good.dataKey)
    expect(record?.metadata).toMatchObject({ cid: good.entry.cid, runtime: 'data' })
    expect(await store.get(foreign.entry.capsuleId)).toBeUndefined()

    // A re-run: nothing fetched again for what is stored; the chain update is retried.
    const again = await rebuildKeyStore({
      mnemonic: words,
      store,
      sealer,
      peerId: PEER,
      directory: listOf([good.entry, chainFails.entry]),
      fetcher: {
        fetchHeader: async () => {
          throw new Error('must not fetch')
        },
      },
      recorder: { updateKeyguard: async (id) => void updated.push(id) },
    })
    expect(again.present.sort()).toEqual([good.entry.capsuleId, chainFails.entry.capsuleId].sort())
    expect(again.failed).toEqual([])
    expect(updated).toContain(chainFails.entry.capsuleId)
  })

  it('a capsule whose chain record already names this keyguard sends no update', async () => {
    const c = await capsule(owner)
    c.entry.keyguardKeyId = (await sealer.publicKey()).keyId
    const r = await rebuildKeyStore({
      mnemonic: words,
      store: await createKeyStore(join(root, 'keys-2')),
      sealer,
      peerId: PEER,
      directory: listOf([c.entry]),
      fetcher: { fetchHeader: async () => c.parsed },
      recorder: {
        updateKeyguard: async () => {
          throw new Error('must not update')
        },
      },
    })
    expect(r.recovered).toEqual([c.entry.capsuleId])
    expect(r.keyguardUpdated).toEqual([])
    expect(r.failed).toEqual([])
  })
})
