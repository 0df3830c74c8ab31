/**
 * `sealAndPublish`: bytes (or a file) and a policy expression in, a published capsule out —
 * the owner pipeline of `@digicap/owner` composed for a laptop that holds the keyguard's
 * public card and the owner's account: policy compiled and deployed, data key wrapped to
 * the keyguard and the recovery key, capsule signed, added to IPFS, registered, announced.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type DigicapSigner,
  encodeBundle,
  InvalidArgumentError,
  isAddress,
  parseReceiver,
  type Receiver,
} from '@digicap/capsule-core'
import { createProvider, digicapEthersSigner, parsePolicyExpression } from '@digicap/contracts'
import { jsonRpcQuorum } from '@digicap/contracts/light'
import {
  ethersCapsuleRegistrar,
  gossipAnnouncer,
  sealAndPublish as ownerSealAndPublish,
  parseKeyguardCard,
  publicKeyWrapper,
  type SealStage,
  solcPolicyDeployer,
} from '@digicap/owner'
import { createDigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { getNetwork, type NetworkRef } from '../networks/registry.ts'
import { checkChainId, checkRpcUrls } from '../receive/chain-grants.ts'
import { requireTransactionSigner } from '../signer/signer.ts'

/** A card given as JSON text is parsed; a parse error is a typed error, not a `SyntaxError`. */
function cardObject(card: unknown): unknown {
  if (typeof card !== 'string') return card
  try {
    return JSON.parse(card)
  } catch {
    throw new InvalidArgumentError('The keyguard card is not JSON', {
      hint: 'Pass the `card` object that `pi-node status --json` prints, or its JSON text.',
    })
  }
}

/**
 * The policy, checked before any network call: an expression that parses, or `{ address }`
 * of a deployed policy (an address, copied).
 */
function checkPolicy(
  policy: SealAndPublishParameters['policy'],
): string | { address: `0x${string}` } {
  if (typeof policy === 'string') {
    parsePolicyExpression(policy)
    return policy
  }
  const address = (policy as { address?: unknown } | null)?.address
  if (!isAddress(address)) {
    throw new InvalidArgumentError('policy is an expression or { address } of a deployed policy', {
      details: { address: typeof address === 'string' ? address.slice(0, 60) : typeof address },
    })
  }
  return { address }
}

export interface SealCode {
  /** `quickjs` (JavaScript) or `wasi` (a WebAssembly module). */
  readonly runtime: 'quickjs' | 'wasi'
  /** The file the runtime starts (a key of `files`). */
  readonly entry: string
  /** The program's files by relative path. */
  readonly files: Readonly<Record<string, Uint8Array>>
  readonly memoryLimit?: number | undefined
  readonly timeLimit?: number | undefined
}

export interface SealAndPublishParameters {
  readonly network: NetworkRef
  readonly rpcUrl?: string | undefined
  /**
   * More RPCs of the same chain (distinct providers). The policy the seal deploys is named only
   * once a quorum of all the RPCs reads there the code its expression compiles to
   * (`PolicyCodeError`, `POLICY_CODE`, otherwise: nothing registered), so the RPC the owner
   * sends through cannot make the capsule name an older, laxer policy of the owner's by
   * answering an old nonce (ADR 0091). With one RPC, that RPC is trusted for the code too.
   */
  readonly rpcUrls?: readonly string[] | undefined
  /** How many RPCs must agree on the policy's code. Default: 1 for one RPC, else a majority. */
  readonly quorum?: number | undefined
  /** The keyguard owner's account; it sends two transactions, so it needs `signTransaction` (`localSigner` has it). */
  readonly owner: DigicapSigner
  /** The keyguard's public card (`pi-node status`'s `card`), as an object or JSON text. */
  readonly keyguard: unknown
  /** What to seal. */
  readonly data: Uint8Array
  /** The unlock rule, e.g. `all(minReputation(50), maxRuns(3))`, or a deployed policy. */
  readonly policy: string | { readonly address: `0x${string}` }
  /** Code that runs on the data (default: a data capsule, delivered as it is). */
  readonly code?: SealCode | undefined
  /** Who gets results: `{ publicKey, peerId }`, or its text `0x<key>@<peer id>` (an SDK receiver's `receiver` / `id`). */
  readonly receivers?: readonly (Receiver | string)[] | undefined
  /** Multiaddrs to announce to (the keyguard's), so that it adopts the capsule at once. */
  readonly peers?: readonly string[] | undefined
  /** Default `['/ip4/127.0.0.1/tcp/0']`: where this process serves the capsule's blocks. */
  readonly listen?: readonly string[] | undefined
  readonly onProgress?: ((stage: SealStage, done: number, total: number) => void) | undefined
}

export interface PublishedCapsule {
  readonly capsuleId: `0x${string}`
  readonly cid: string
  readonly policy: `0x${string}`
  readonly registerTransaction: string
  /** Whether a keyguard heard the announcement. */
  readonly announced: {
    readonly ok: boolean
    readonly recipients?: number
    readonly reason?: string
  }
  /** Where this process serves the capsule (an executor fetches it from here or a pinning peer). */
  multiaddrs(): string[]
  /** Stops serving the capsule (after a peer pinned it, or when the runs are done). */
  stop(): Promise<void>
}

/**
 * @throws {SignerUnsupportedError} for an owner signer without `signTransaction` (sealing
 *   sends the policy and registration transactions).
 * @throws {InvalidArgumentError} for a malformed card (its peerId too), empty data, a malformed
 *   receiver (text or object) or policy address, or code whose entry is missing: all before
 *   any network call.
 * @throws `@digicap/contracts`' `PolicyExpressionError` for a bad policy, its `ContractRevertError`
 *   for a refused registration; `@digicap/capsule-core`'s `CapsuleSignatureError` for a signer
 *   that signs as another account; network and chain errors of this package.
 */
export async function sealAndPublish(p: SealAndPublishParameters): Promise<PublishedCapsule> {
  const network = getNetwork(p.network, { rpcUrl: p.rpcUrl })
  requireTransactionSigner(p.owner, 'Sealing (the policy deployment and the registration)')
  const { card, recoveryPublicKey } = parseKeyguardCard(cardObject(p.keyguard))
  if (!(p.data instanceof Uint8Array) || p.data.length === 0) {
    throw new InvalidArgumentError('Nothing to seal: data is empty or not bytes')
  }
  const receivers = (p.receivers ?? []).map(parseReceiver)
  const policy = checkPolicy(p.policy)
  checkRpcUrls(p.rpcUrls)
  // Built before any network call: a quorum that cannot be met is refused here.
  const policyRpcs = {
    rpcUrls: [network.rpcUrl, ...(p.rpcUrls ?? [])],
    ...(p.quorum === undefined ? {} : { quorum: p.quorum }),
  }
  const deployer = (wallet: Parameters<typeof solcPolicyDeployer>[0]) =>
    solcPolicyDeployer(wallet, { nodeRegistry: network.addresses.nodeRegistry, ...policyRpcs })
  jsonRpcQuorum(policyRpcs)
  let plaintext = p.data
  if (p.code !== undefined) {
    if (!Object.hasOwn(p.code.files, p.code.entry)) {
      throw new InvalidArgumentError('The code entry is not one of its files', {
        details: { entry: p.code.entry, files: Object.keys(p.code.files).slice(0, 20) },
      })
    }
    plaintext = encodeBundle({ entry: p.code.entry, files: { ...p.code.files }, data: p.data })
  }
  await checkChainId(network, p.rpcUrls)
  const provider = createProvider(network.rpcUrl, network.chainId)
  // The owner's signer signs each transaction, wherever its key is.
  const wallet = digicapEthersSigner(p.owner, provider)
  // Only the capsule (ciphertext) is written there: the plaintext is sealed from memory.
  const dir = await mkdtemp(join(tmpdir(), 'digicap-seal-'))
  const node = await createDigicapNode({ listen: p.listen ?? ['/ip4/127.0.0.1/tcp/0'] })
  try {
    const r = await ownerSealAndPublish(
      {
        input: '',
        data: plaintext,
        output: join(dir, 'capsule'),
        policy,
        chainId: network.chainId,
        registry: network.addresses.capsuleRegistry,
        keyguardPeerId: card.peerId,
        recoveryPublicKey,
        ...(p.code === undefined
          ? {}
          : {
              runtime: {
                kind: p.code.runtime,
                entry: p.code.entry,
                ...(p.code.memoryLimit === undefined ? {} : { memoryLimit: p.code.memoryLimit }),
                ...(p.code.timeLimit === undefined ? {} : { timeLimit: p.code.timeLimit }),
              },
            }),
        receivers,
        ...(p.onProgress === undefined ? {} : { onProgress: p.onProgress }),
      },
      {
        signer: p.owner,
        wrapper: publicKeyWrapper(card.wrappingKey),
        policies: deployer(wallet),
        registrar: ethersCapsuleRegistrar(wallet, { contracts: network.addresses }),
        store: heliaCapsuleStore(node.helia),
        announcer: gossipAnnouncer(node, { peers: p.peers ?? [] }),
      },
    )
    // The blocks are in the node (helia); the capsule file was only the pipeline's working copy.
    await rm(dir, { recursive: true, force: true })
    provider.destroy()
    return {
      capsuleId: r.capsuleId,
      cid: r.cid,
      policy: r.policy,
      registerTransaction: r.registerTransaction,
      announced: r.announced,
      multiaddrs: () => node.multiaddrs(),
      stop: () => node.stop(),
    }
  } catch (err) {
    await node.stop()
    provider.destroy()
    await rm(dir, { recursive: true, force: true })
    throw err
  } finally {
    plaintext !== p.data && plaintext.fill(0)
  }
}
