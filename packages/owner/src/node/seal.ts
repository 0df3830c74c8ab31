/** `pi-node seal`: a composition of `sealAndPublish` of `@digicap/owner`. */
import { randomBytes } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateCapsuleId, type Receiver, type RuntimeKind, toHex } from '@digicap/capsule-core'
import { ConfigError, rpcChainId, writeJsonAtomic } from '@digicap/cli-kit'
import { parsePolicyExpression } from '@digicap/contracts/light'
import type { Logger } from '@digicap/keyguard'
import { openFsCapsuleImporter } from '@digicap/p2p/import'
import type { Announcer } from '../announce/types.ts'
import { RuntimeUnsupportedError } from '../errors.ts'
import type { SealImageComponents, SealImageResult } from '../image/seal-image.ts'
import { childProcessPolicyCompiler } from '../policy/child-compiler.ts'
import { cachedPolicyCompiler } from '../policy/policy-cache.ts'
import { transactorPolicyDeployer } from '../policy/transactor-policy-deployer.ts'
import { transactorCapsuleRegistrar } from '../registry/transactor-registrar.ts'
import { checkSealInput, sealAndPublish } from '../seal/seal-and-publish.ts'
import type { SealAndPublishResult } from '../seal/types.ts'
import {
  executorBundleEncoder,
  type OwnerNodeParts,
  type OwnerNodePaths,
  ownerTransactions,
  type ProgressFn,
  readServeFile,
  withOwnerKey,
} from './components.ts'

export interface SealOptions {
  /** The data file (an image capsule's input; empty for none). */
  file: string
  /** An image capsule (`runtime: 'oci'`): an OCI layout directory or a docker archive. */
  image?: string
  /** Which image of the layout (its ref name). */
  ref?: string
  /** Policy expression, e.g. `all(minReputation(50), maxRuns(3))`. */
  policy: string
  runtime?: RuntimeKind
  /** Entry of a code capsule. */
  entry?: string
  /** Code file or folder of a code capsule. */
  code?: string
  receivers?: Receiver[]
  memoryLimit?: number
  timeLimit?: number
  onProgress?: ProgressFn
  /** How long to wait for a subscriber when announcing through a running `serve`. Default 5000. */
  announceTimeoutMs?: number
  /**
   * Announces the capsule instead of dialling a running `serve` from a short-lived node: the
   * daemon's seal socket passes its own node's (ADR 0107).
   */
  announcer?: Announcer
}

export interface SealResult {
  capsuleId: string
  cid: string
  policy: string
  policyTransaction: string
  registerTransaction: string
  capsulePath: string
  capsuleSize: number
  plaintextSize: number
  /** Whether the capsule was announced on gossipsub (through a running `serve`). */
  announced: { ok: boolean; recipients?: number; reason?: string }
  /** An image capsule's commitment (the encrypted image's manifest digest) and image map CID. */
  image?: { manifestDigest: string; distribution: string; imageBytes: number }
}

/** The flags of a code capsule, checked before anything is sent. */
function checkRuntime(options: SealOptions): RuntimeKind {
  const runtime = options.runtime ?? 'data'
  if (runtime === 'oci') {
    if (!options.image)
      throw new ConfigError('An image capsule needs the image', { details: { runtime } })
    return runtime
  }
  if (runtime !== 'data' && runtime !== 'quickjs' && runtime !== 'wasi') {
    throw new RuntimeUnsupportedError('Unknown capsule runtime', { details: { runtime } })
  }
  if (runtime !== 'data' && (!options.entry || !options.code)) {
    throw new ConfigError('A code capsule needs --entry and --code', { details: { runtime } })
  }
  if (runtime === 'data' && (options.entry !== undefined || options.code !== undefined)) {
    throw new ConfigError('--entry and --code are for code capsules (--runtime quickjs|wasi)', {
      details: { runtime },
    })
  }
  return runtime
}

/**
 * Announces through a running `serve`: a short-lived libp2p node (no listener, blocks in
 * memory) dials it and publishes. Started only here, after the capsule is registered, and only
 * when `serve` runs: the seal itself loads no libp2p (the blocks go straight to the on-disk
 * blockstore that `serve` provides).
 */
function serveAnnouncer(paths: OwnerNodePaths, timeoutMs: number, logger: Logger): Announcer {
  return {
    async announce(ann) {
      const serve = await readServeFile(paths.serve)
      if (!serve) return { ok: false, reason: 'serve-not-running' }
      const addr =
        serve.multiaddrs.find((m) => m.startsWith('/ip4/127.0.0.1/')) ?? serve.multiaddrs[0]
      if (!addr) return { ok: false, reason: 'serve-has-no-address' }
      const [{ createDigicapNode }, { gossipAnnouncer }] = await Promise.all([
        import('@digicap/p2p'),
        import('../announce/gossip-announcer.ts'),
      ])
      const node = await createDigicapNode({ listen: [] })
      try {
        const out = await gossipAnnouncer(node, { peers: [addr], timeoutMs }).announce(ann)
        if (!out.ok) logger.warn('announcement failed', { code: out.reason })
        return out
      } finally {
        await node.stop()
      }
    },
  }
}

/** The capsule folder's record of what was sealed (policy source and metadata, capsule). */
async function writeCapsuleFiles(dir: string, expression: string, r: SealAndPublishResult) {
  const p = r.deployedPolicy
  if (p) {
    await writeFile(join(dir, 'policy.sol'), p.source, { mode: 0o600 })
    const { address, transactionHash, contractName, solcVersion, settings, metadata } = p
    await writeJsonAtomic(join(dir, 'policy.json'), {
      address,
      transactionHash,
      expression,
      contractName,
      solcVersion,
      settings,
      metadata,
    })
  }
  await writeJsonAtomic(join(dir, 'capsule.json'), {
    capsuleId: r.capsuleId,
    cid: r.cid,
    policy: r.policy,
    registerTransaction: r.registerTransaction,
    plaintextSize: r.plaintextSize,
    capsuleSize: r.capsuleSize,
    runtime: r.metadata.runtime,
    createdAt: new Date().toISOString(),
  })
}

/** `sealImageCapsule` in `sealAndPublish`'s shape: the image and its blobs' store added. */
function sealImage(
  dir: string,
  options: SealOptions,
  blobs: SealImageComponents['blobs'],
): typeof sealAndPublish {
  // Loaded for image capsules only: a data or code seal does not load the OCI modules.
  return async ({ input, runtime, ...params }, components) =>
    (await import('../image/seal-image.ts')).sealImageCapsule(
      {
        ...params,
        image: options.image as string,
        ...(options.ref !== undefined ? { ref: options.ref } : {}),
        ...(input !== '' ? { inputFile: input } : {}),
        workDir: dir,
        ...(runtime?.memoryLimit !== undefined ? { memoryLimit: runtime.memoryLimit } : {}),
        ...(runtime?.timeLimit !== undefined ? { timeLimit: runtime.timeLimit } : {}),
      },
      { ...components, blobs },
    )
}

/**
 * `seal`: the checks a CLI user expects first (policy, chain, file, code flags), then the code
 * bundle if any, then `sealAndPublish` with this node's components; the capsule's folder
 * keeps the capsule, the policy source and what was sealed.
 */
export async function sealOwnerNode(
  parts: OwnerNodeParts,
  options: SealOptions,
): Promise<SealResult> {
  const { config, paths, sealer, keyStore, owner, ownerPeerId, logger, components } = parts
  parsePolicyExpression(options.policy)
  await rpcChainId(config.rpcUrl, config.chainId)
  const runtime = checkRuntime(options)
  if (runtime !== 'oci' || options.file !== '') await checkSealInput(options.file)
  const capsuleIdBytes = generateCapsuleId()
  const dir = join(paths.capsules, toHex(capsuleIdBytes))
  await mkdir(dir, { recursive: true, mode: 0o700 })
  let input = options.file
  if (runtime !== 'data' && runtime !== 'oci') {
    // The bundle is plaintext: named as an atomic write's temp (`.tmp-<name>.<pid>.<random>`),
    // so that the next node opened after a killed seal removes it (removeLeftoverTemps).
    input = join(dir, `.tmp-bundle.${process.pid}.${randomBytes(6).toString('hex')}`)
    const encode = components.encodeBundle ?? executorBundleEncoder
    const { entry, code } = options as Required<SealOptions>
    await encode({ entry, code, data: options.file, outputPath: input }).catch(async (err) => {
      await rm(dir, { recursive: true, force: true })
      throw err
    })
  }
  const capsulePath = join(dir, 'capsule.bin')
  const serialize = <T>(fn: () => Promise<T>) => ownerTransactions(paths, fn)
  // Blocks go to the on-disk blockstore that `serve` provides; announce through it.
  // The capsule stays in its folder: the blockstore keeps its leaves as references to it
  // (one write of the capsule, not two), which the node serves from there.
  const blocks = await openFsCapsuleImporter(paths.ipfs, { referenceFiles: true })
  try {
    const r = await withOwnerKey(paths, sealer, config, ({ transactor, signer }) =>
      (runtime === 'oci' ? sealImage(dir, options, blocks) : sealAndPublish)(
        {
          input,
          output: capsulePath,
          policy: options.policy,
          chainId: config.chainId,
          registry: config.contracts.capsuleRegistry,
          keyguardPeerId: ownerPeerId,
          recoveryPublicKey: owner.recoveryPublicKey,
          runtime: {
            kind: runtime,
            ...(options.entry !== undefined ? { entry: options.entry } : {}),
            ...(options.memoryLimit !== undefined ? { memoryLimit: options.memoryLimit } : {}),
            ...(options.timeLimit !== undefined ? { timeLimit: options.timeLimit } : {}),
          },
          receivers: options.receivers ?? [],
          capsuleId: capsuleIdBytes,
          ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        },
        {
          signer,
          wrapper: sealer,
          policies: transactorPolicyDeployer(transactor, {
            nodeRegistry: config.contracts.nodeRegistry,
            serialize,
            // The created policy's code is read through the keyguard's RPCs and quorum before
            // the header names it: one lying RPC cannot pick the capsule's policy.
            rpcUrls: [config.rpcUrl, ...(config.rpcUrls ?? [])],
            ...(config.quorum !== undefined ? { quorum: config.quorum } : {}),
            // solc in a child (its heap never joins the capsule's streaming), once per source
            compile: cachedPolicyCompiler(paths.policyCache, childProcessPolicyCompiler()),
          }),
          registrar: transactorCapsuleRegistrar(transactor, {
            contracts: config.contracts,
            serialize,
          }),
          store: blocks,
          announcer:
            options.announcer ?? serveAnnouncer(paths, options.announceTimeoutMs ?? 5000, logger),
          keyRecords: keyStore,
        },
      ),
    )
    await writeCapsuleFiles(dir, options.policy, r)
    return {
      capsuleId: r.capsuleId,
      cid: r.cid,
      policy: r.policy,
      policyTransaction: r.deployedPolicy?.transactionHash ?? '',
      registerTransaction: r.registerTransaction,
      capsulePath,
      capsuleSize: r.capsuleSize,
      plaintextSize: r.plaintextSize,
      announced: r.announced,
      ...('manifestDigest' in r
        ? {
            image: {
              manifestDigest: (r as SealImageResult).manifestDigest,
              distribution: (r as SealImageResult).distribution,
              imageBytes: (r as SealImageResult).imageBytes,
            },
          }
        : {}),
    }
  } finally {
    await blocks.close()
    if (input !== options.file) await rm(input, { force: true })
  }
}
