/**
 * Sealing on a laptop that holds only the keyguard's public card, then the Pi's keyguard
 * releases the key: a real anvil, a real swtpm behind the Pi's sealer, real libp2p + helia
 * nodes on loopback (Pi, laptop, executor), the keyguard package's own runtime.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  checkKeyCommitment,
  decodeHpkeSealed,
  generateX25519KeyPair,
  hpkeOpen,
  openFile,
  parseCapsuleHeader,
  privateKeySigner,
} from '@digicap/capsule-core'
import {
  connectDigicap,
  createProvider,
  type DigicapAddresses,
  deployDigicap,
  ethersSigner,
} from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import {
  createKeyguard,
  createKeyStore,
  createReleaseJournal,
  deriveOwnerIdentity,
  ethersChainClient,
  generateMnemonic,
  type Keyguard,
  type KeyStore,
  type OwnerIdentity,
  type Sealer,
  tpm2Sealer,
} from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import {
  type CapsuleAnnouncement,
  createDigicapNode,
  type DigicapNode,
  heliaCapsuleStore,
  subscribeCapsuleAnnouncements,
} from '@digicap/p2p'
import { handle, keyReleaseProtocol, type ReleaseAck } from '@digicap/protocol'
import { multiaddr } from '@multiformats/multiaddr'
import { hexlify, parseEther, randomBytes, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  adoptCapsules,
  ethersCapsuleDirectory,
  ethersCapsuleRegistrar,
  gossipAnnouncer,
  ipfsHeaderFetcher,
  type KeyWrapper,
  keyguardCard,
  parseKeyguardCard,
  publicKeyWrapper,
  type SealAndPublishComponents,
  type SealStage,
  sealAndPublish,
  solcPolicyDeployer,
} from '../src/index.ts'

let anvil: Anvil
let tpm: Swtpm
let dir: string
let contracts: DigicapAddresses
let identity: OwnerIdentity
// The Pi: sealer in the TPM, key store, keyguard on its own libp2p node.
let piSealer: Sealer
let piKeyStore: KeyStore
let piNode: DigicapNode
let keyguard: Keyguard
// The laptop: its own node; of the keyguard it knows only the card.
let laptop: DigicapNode
// The executor: a registered node that opens key releases.
let executorNode: DigicapNode
const ephemeral = new Map<string, Uint8Array>()
const released = new Map<string, Uint8Array>()
const announced: CapsuleAnnouncement[] = []

beforeAll(async () => {
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
  dir = await mkdtemp(join(tmpdir(), 'owner-laptop-'))
  contracts = await deployDigicap(anvil.signers[0] as Wallet)
  identity = await deriveOwnerIdentity(generateMnemonic())
  await anvil.provider.send('anvil_setBalance', [identity.address, '0x3635c9adc5dea00000'])

  piSealer = tpm2Sealer({ tcti: tpm.tcti, createIfMissing: true })
  piKeyStore = await createKeyStore(join(dir, 'pi', 'keys'))
  piNode = await createDigicapNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  keyguard = createKeyguard({
    dataDir: join(dir, 'pi', 'keyguard'),
    confirmations: 0,
    startBlock: contracts.deployBlock,
    pollIntervalMs: 100,
    fastPath: { enabled: false },
  })({
    sealer: piSealer,
    keyStore: piKeyStore,
    journal: await createReleaseJournal(join(dir, 'pi', 'journal')),
    chain: ethersChainClient({
      providers: [createProvider(anvil.rpcUrl, Number(anvil.chainId))],
      addresses: contracts,
      chainId: anvil.chainId,
    }),
    libp2p: piNode.libp2p,
  })
  await keyguard.start()
  // The Pi adopts what the owner announces for it (as `pi-node serve` does).
  subscribeCapsuleAnnouncements(piNode, (ann) => announced.push(ann))

  laptop = await createDigicapNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  executorNode = await createDigicapNode({})
  await handle(executorNode.libp2p, keyReleaseProtocol, async (r): Promise<ReleaseAck> => {
    for (const priv of ephemeral.values()) {
      try {
        released.set(hexlify(r.grantId), await hpkeOpen(priv, decodeHpkeSealed(r.hpke), r.grantId))
        return { grantId: r.grantId, status: 'ok' }
      } catch {
        // another run's key
      }
    }
    return { grantId: r.grantId, status: 'open-failed' }
  })
  // The executor fetched the capsule from the owner's side, so the keyguard can reach it.
  await executorNode.libp2p.dial(multiaddr(piNode.multiaddrs()[0] as string))
  const executor = connectDigicap(contracts, anvil.signers[2] as Wallet)
  await (
    await executor.nodeRegistry.register(
      executorNode.libp2p.peerId.toMultihash().bytes,
      hexlify(randomBytes(32)),
      1,
      { value: parseEther('0.01') },
    )
  ).wait()
})

afterAll(async () => {
  await keyguard?.stop()
  await Promise.all([piNode?.stop(), laptop?.stop(), executorNode?.stop()])
  await Promise.all([anvil?.stop(), tpm?.stop()])
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** What the laptop builds: its components from the card and the owner's key alone. */
async function laptopComponents(cardJson: string, wrapper?: KeyWrapper) {
  const { card, recoveryPublicKey } = parseKeyguardCard(JSON.parse(cardJson))
  const wallet = new Wallet(hexlify(identity.ethereumPrivateKey), anvil.provider)
  const components: SealAndPublishComponents = {
    signer: privateKeySigner(identity.ethereumPrivateKey),
    wrapper: wrapper ?? publicKeyWrapper(card.wrappingKey),
    policies: solcPolicyDeployer(wallet, { nodeRegistry: contracts.nodeRegistry }),
    registrar: ethersCapsuleRegistrar(wallet, { contracts }),
    store: heliaCapsuleStore(laptop.helia),
    announcer: gossipAnnouncer(laptop, { peers: [piNode.multiaddrs()[0] as string] }),
  }
  return { card, recoveryPublicKey, components }
}

async function piCard(): Promise<string> {
  // What the Pi prints for its owner: public facts only.
  const card = await keyguardCard({
    peerId: piNode.peerId,
    wrapper: piSealer,
    recoveryPublicKey: identity.recoveryKeyPair.publicKey,
  })
  const text = JSON.stringify(card)
  expect(text).not.toMatch(/PRIVATE/)
  return text
}

async function requestOnChain(capsuleId: string): Promise<{ grantId: string; key: Uint8Array }> {
  const kp = generateX25519KeyPair()
  ephemeral.set(hexlify(kp.publicKey), kp.privateKey)
  const { accessController } = connectDigicap(contracts, anvil.signers[2] as Wallet)
  const tx = await accessController.requestAccess(
    capsuleId,
    hexlify(kp.publicKey),
    hexlify(randomBytes(32)),
    '0x',
  )
  const receipt = await tx.wait()
  const grant = receipt?.logs
    .map((l) => accessController.interface.parseLog(l))
    .find((p) => p?.name === 'AccessGranted')
  const grantId = String(grant?.args[0]).toLowerCase()
  const deadline = Date.now() + 30_000
  while (!released.has(grantId)) {
    if (Date.now() > deadline) throw new Error('no key release within 30 s')
    await new Promise((r) => setTimeout(r, 50))
  }
  return { grantId, key: released.get(grantId) as Uint8Array }
}

async function adopt(capsuleIds?: string[]) {
  const provider = createProvider(anvil.rpcUrl, Number(anvil.chainId))
  try {
    return await adoptCapsules(
      { owner: identity.address, peerId: piNode.peerId, ...(capsuleIds ? { capsuleIds } : {}) },
      {
        sealer: piSealer,
        keyStore: piKeyStore,
        directory: ethersCapsuleDirectory(provider, contracts, {
          fromBlock: contracts.deployBlock,
        }),
        fetcher: ipfsHeaderFetcher(heliaCapsuleStore(piNode.helia)),
      },
    )
  } finally {
    provider.destroy()
  }
}

/** The announcement of `capsuleId` the Pi heard, waiting up to `ms` for it. */
async function heardBy(capsuleId: string, ms: number): Promise<CapsuleAnnouncement | undefined> {
  const deadline = Date.now() + ms
  for (;;) {
    const heard = announced.find((a) => a.capsuleId === capsuleId)
    if (heard !== undefined || Date.now() > deadline) return heard
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Seals a small file from the laptop with an already deployed policy. */
async function sealSmall(
  name: string,
  components: SealAndPublishComponents,
  policy: `0x${string}`,
) {
  const { card, recoveryPublicKey } = parseKeyguardCard(JSON.parse(await piCard()))
  const input = join(dir, `${name}.txt`)
  await writeFile(input, `${name}\n`)
  return sealAndPublish(
    {
      input,
      output: join(dir, `${name}.capsule`),
      policy: { address: policy },
      chainId: Number(anvil.chainId),
      registry: contracts.capsuleRegistry as `0x${string}`,
      keyguardPeerId: card.peerId,
      recoveryPublicKey,
    },
    components,
  )
}

let firstPolicy: `0x${string}`

describe('seal on a laptop with only the public card; the Pi keyguard releases', () => {
  it('seals and publishes, the Pi adopts from chain + IPFS, a chain grant gets the key', async () => {
    const { card, recoveryPublicKey, components } = await laptopComponents(await piCard())
    const input = join(dir, 'salaries.csv')
    const plaintext = 'name,salary\nada,100\n'.repeat(5000)
    await writeFile(input, plaintext)
    const stages: SealStage[] = []
    const r = await sealAndPublish(
      {
        input,
        output: join(dir, 'salaries.capsule'),
        policy: 'maxRuns(2)',
        chainId: Number(anvil.chainId),
        registry: contracts.capsuleRegistry as `0x${string}`,
        keyguardPeerId: card.peerId,
        recoveryPublicKey,
        onProgress: (stage) => {
          if (stages.at(-1) !== stage) stages.push(stage)
        },
      },
      components,
    )
    // the deployment starts first and overlaps the seal (ADR 0048): its end may come in between
    expect(stages[0]).toBe('policy')
    expect(stages.filter((s) => s !== 'policy')).toEqual(['seal', 'add', 'register', 'announce'])
    expect(r.announced).toEqual({ ok: true, recipients: 1 })
    expect(r.deployedPolicy?.address).toBe(r.policy)
    // The Pi has not seen the key yet: the laptop sent it nothing but public data.
    expect(await piKeyStore.get(r.capsuleId)).toBeUndefined()

    // `recipients: 1` says gossipsub sent it to the Pi; the Pi checks it before it hands it on,
    // which a loaded CI box can finish after `sealAndPublish` returns: wait for it (10 s at most).
    const heard = await heardBy(r.capsuleId, 10_000)
    expect(heard).toMatchObject({ cid: r.cid, keyguardPeer: piNode.peerId })
    firstPolicy = r.policy
    expect(await adopt([heard?.capsuleId as string])).toEqual({
      adopted: [r.capsuleId],
      present: [],
      skipped: [],
      failed: [],
    })
    // Idempotent: a second pass finds it present and unwraps nothing.
    expect((await adopt([r.capsuleId])).present).toEqual([r.capsuleId])

    const { key } = await requestOnChain(r.capsuleId)
    const capsule = await readFile(join(dir, 'salaries.capsule'))
    expect(checkKeyCommitment(parseCapsuleHeader(capsule), key)).toBe(true)
    await openFile({
      input: join(dir, 'salaries.capsule'),
      output: join(dir, 'opened.csv'),
      dataKey: key,
      owner: identity.address,
    })
    expect(await readFile(join(dir, 'opened.csv'), 'utf8')).toBe(plaintext)
  })
})

describe('what the Pi refuses to adopt, and what the pipeline refuses to seal', () => {
  it('a laptop copy that is not the committed key is refused (CAPSULE_ADOPTION), nothing stored', async () => {
    const { card, components } = await laptopComponents(await piCard())
    const honest = publicKeyWrapper(card.wrappingKey)
    // Fault injection: the wrapper wraps some other key than the capsule's data key.
    const lying: KeyWrapper = {
      publicKey: () => honest.publicKey(),
      wrap: () => honest.wrap(randomBytes(32)),
    }
    const r = await sealSmall('lying-wrap', { ...components, wrapper: lying }, firstPolicy)
    const out = await adopt([r.capsuleId])
    expect(out.adopted).toEqual([])
    expect(out.failed).toMatchObject([{ capsuleId: r.capsuleId, code: 'CAPSULE_ADOPTION' }])
    expect(await piKeyStore.get(r.capsuleId)).toBeUndefined()
  })

  it('a chain record whose CID holds another capsule is refused (CAPSULE_SIGNATURE)', async () => {
    const { components } = await laptopComponents(await piCard())
    const other = await sealSmall('other', components, firstPolicy)
    const swapped = await sealSmall(
      'swapped',
      {
        ...components,
        registrar: {
          register: (entry) => components.registrar.register({ ...entry, cid: other.cid }),
        },
      },
      firstPolicy,
    )
    const out = await adopt([swapped.capsuleId])
    expect(out.failed).toMatchObject([{ capsuleId: swapped.capsuleId, code: 'CAPSULE_SIGNATURE' }])
    expect(await piKeyStore.get(swapped.capsuleId)).toBeUndefined()
  })

  it("a stranger's capsule naming this keyguard is never looked at", async () => {
    const stranger = anvil.signers[3] as Wallet
    const { components } = await laptopComponents(await piCard())
    const r = await sealSmall(
      'stranger',
      {
        ...components,
        signer: privateKeySigner(stranger.privateKey as `0x${string}`),
        registrar: ethersCapsuleRegistrar(stranger, { contracts }),
      },
      firstPolicy,
    )
    const out = await adopt()
    expect([...out.adopted, ...out.present, ...out.skipped]).not.toContain(r.capsuleId)
    expect(out.failed.map((f) => f.capsuleId)).not.toContain(r.capsuleId)
    expect(await piKeyStore.get(r.capsuleId)).toBeUndefined()
  })

  it('bad input fails typed before any transaction; a signer that is not the owner fails before registering', async () => {
    const { components } = await laptopComponents(await piCard())
    const nonce = await anvil.provider.getTransactionCount(identity.address)
    const base = {
      input: join(dir, 'missing.txt'),
      output: join(dir, 'missing.capsule'),
      policy: 'maxRuns(1)',
      chainId: Number(anvil.chainId),
      registry: contracts.capsuleRegistry as `0x${string}`,
      keyguardPeerId: piNode.peerId,
      recoveryPublicKey: identity.recoveryKeyPair.publicKey,
    }
    await expect(sealAndPublish(base, components)).rejects.toMatchObject({ code: 'INPUT_FILE' })
    await expect(sealAndPublish({ ...base, input: dir }, components)).rejects.toMatchObject({
      code: 'INPUT_FILE',
    })
    await writeFile(join(dir, 'ok.txt'), 'ok')
    const ok = { ...base, input: join(dir, 'ok.txt') }
    await expect(
      sealAndPublish({ ...ok, runtime: { kind: 'docker' as 'data' } }, components),
    ).rejects.toMatchObject({ code: 'RUNTIME_UNSUPPORTED' })
    const { policies: _, ...noDeployer } = components
    await expect(sealAndPublish(ok, noDeployer)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(sealAndPublish({ ...ok, policy: 'maxRuns(' }, components)).rejects.toMatchObject({
      code: 'POLICY_EXPRESSION',
    })
    expect(await anvil.provider.getTransactionCount(identity.address)).toBe(nonce)
    // A signer that claims the owner's address but signs with another key.
    const impostor = privateKeySigner(randomBytes(32))
    const registered: string[] = []
    await expect(
      sealAndPublish(
        { ...ok, policy: { address: firstPolicy } },
        {
          ...components,
          signer: { address: identity.address, signTypedData: impostor.signTypedData },
          registrar: {
            register: async (e) => {
              registered.push(e.capsuleId)
              return { transactionHash: '0x' }
            },
          },
        },
      ),
    ).rejects.toMatchObject({ code: 'CAPSULE_SIGNATURE' })
    expect(registered).toEqual([])
  })

  it('the order is the crash order, the data key is zeroed, and an announcer that throws does not fail the seal', async () => {
    const { card, components } = await laptopComponents(await piCard())
    const honest = publicKeyWrapper(card.wrappingKey)
    const calls: string[] = []
    const seen: Uint8Array[] = []
    const spying: SealAndPublishComponents = {
      ...components,
      wrapper: {
        publicKey: () => honest.publicKey(),
        wrap: (dataKey) => {
          seen.push(dataKey)
          expect(dataKey.some((b) => b !== 0)).toBe(true)
          return honest.wrap(dataKey)
        },
      },
      store: {
        put: (src, o) => {
          calls.push('add')
          return components.store.put(src, o)
        },
      },
      keyRecords: { put: async () => calls.push('key-record') },
      registrar: {
        register: (e) => {
          calls.push('register')
          return components.registrar.register(e)
        },
      },
      announcer: {
        announce: async () => {
          calls.push('announce')
          throw new Error('the network is down')
        },
      },
    }
    const r = await sealSmall('ordered', spying, firstPolicy)
    expect(calls).toEqual(['add', 'key-record', 'register', 'announce'])
    expect(r.announced).toEqual({ ok: false, reason: 'UNKNOWN' })
    expect(seen).toHaveLength(1)
    expect(seen[0]?.every((b) => b === 0)).toBe(true)
    // A failure after sealing (the chain refuses) still leaves the key zeroed.
    seen.length = 0
    const refused = sealSmall(
      'refused',
      {
        ...spying,
        registrar: {
          register: async () => {
            throw new Error('reverted')
          },
        },
      },
      firstPolicy,
    )
    await expect(refused).rejects.toThrow('reverted')
    expect(seen[0]?.every((b) => b === 0)).toBe(true)
  })

  it('a registration that fails (the capsule id registered first by another account) removes the key record', async () => {
    const { components } = await laptopComponents(await piCard())
    const squatter = connectDigicap(contracts, anvil.signers[3] as Wallet)
    let capsuleId = ''
    const squatted = sealSmall(
      'squatted',
      {
        ...components,
        keyRecords: piKeyStore,
        registrar: {
          // The chain's owner of the id, which the pipeline asks after CapsuleExists.
          ownerOf: (id) => (components.registrar.ownerOf as (id: string) => Promise<string>)(id),
          // A front-runner copies the id from the mempool and registers it first.
          register: async (e) => {
            capsuleId = e.capsuleId
            expect((await piKeyStore.get(capsuleId))?.metadata.owner).toBe(identity.address)
            await (
              await squatter.capsuleRegistry.register(
                e.capsuleId,
                firstPolicy,
                e.cid,
                hexlify(randomBytes(32)),
                piNode.libp2p.peerId.toMultihash().bytes,
                hexlify(randomBytes(32)),
              )
            ).wait()
            return components.registrar.register(e)
          },
        },
      },
      firstPolicy,
    )
    await expect(squatted).rejects.toThrow()
    expect(capsuleId).not.toBe('')
    expect(await piKeyStore.get(capsuleId)).toBeUndefined()
  })

  it('a card is checked: the recovery scheme, a short recovery key or no peer id are refused', async () => {
    const card = JSON.parse(await piCard())
    expect(parseKeyguardCard(card).recoveryPublicKey).toHaveLength(32)
    for (const bad of [
      { ...card, wrappingKey: { ...card.wrappingKey, scheme: 'hpke-x25519-recovery' } },
      { ...card, recoveryPublicKey: '0x1234' },
      { ...card, peerId: '' },
      null,
    ]) {
      expect(() => parseKeyguardCard(bad)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
      )
    }
    expect(() => publicKeyWrapper({ ...card.wrappingKey, pem: 'not a key' })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })
})

describe('the README example', () => {
  it('runs as written: sealed, added and registered for the card it read', async () => {
    const cardFile = join(dir, 'keyguard.json')
    await writeFile(cardFile, await piCard())
    const file = join(dir, 'photo.jpg')
    await writeFile(file, randomBytes(3000))
    const wallet = new Wallet(hexlify(identity.ethereumPrivateKey), anvil.provider)
    const chainId = Number(anvil.chainId)
    const node = laptop
    const logged: string[] = []
    const console = { log: (line: string) => logged.push(line) }
    // README:start
    const { card, recoveryPublicKey } = parseKeyguardCard(
      JSON.parse(await readFile(cardFile, 'utf8')),
    )
    const r = await sealAndPublish(
      {
        input: file,
        output: `${file}.capsule`,
        policy: 'maxRuns(3)',
        chainId,
        recoveryPublicKey,
        registry: contracts.capsuleRegistry,
        keyguardPeerId: card.peerId,
      },
      {
        signer: await ethersSigner(wallet),
        wrapper: publicKeyWrapper(card.wrappingKey),
        policies: solcPolicyDeployer(wallet, { nodeRegistry: contracts.nodeRegistry }),
        registrar: ethersCapsuleRegistrar(wallet, { contracts }),
        store: heliaCapsuleStore(node.helia),
      },
    )
    console.log(`sealed ${r.capsuleId} as ${r.cid} under policy ${r.policy}`)
    // README:end
    expect(logged).toEqual([`sealed ${r.capsuleId} as ${r.cid} under policy ${r.policy}`])
    const onChain = await connectDigicap(contracts, anvil.provider).capsuleRegistry.getCapsule(
      r.capsuleId,
    )
    expect([onChain.owner, onChain.cid, onChain.policy]).toEqual([wallet.address, r.cid, r.policy])
    const header = parseCapsuleHeader(await readFile(`${file}.capsule`))
    expect(header.header.keyguard.peerId).toBe(piNode.peerId)

    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
    const block = /## Example[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
    const body = block.split('\n\n').slice(1).join('\n\n').trim()
    const me = await readFile(new URL(import.meta.url), 'utf8')
    const region = /\/\/ README:start\n([\s\S]*?)\n\s*\/\/ README:end/.exec(me)?.[1] ?? ''
    // The README keeps it on 10 lines; the formatter here spreads it out: same tokens.
    const tokens = (code: string) => code.replace(/\s+/g, '').replace(/,([}\])])/g, '$1')
    expect(tokens(body)).toBe(tokens(region))
    expect(body.split('\n').length).toBeLessThanOrEqual(10)
  })
})
