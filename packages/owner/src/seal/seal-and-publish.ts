import { randomBytes } from 'node:crypto'
import { open, rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import {
  type CapsuleHeader,
  type CreateCapsuleHeaderParameters,
  capsuleTypedData,
  commitAndSealFile,
  createCapsuleHeader,
  DigicapError,
  type FilePieceDigest,
  generateCapsuleId,
  generateDataKey,
  InvalidArgumentError,
  parseReceiver,
  sealCapsule,
  signTypedDataWith,
  toHex,
} from '@digicap/capsule-core'
import { wrapToRecoveryKey } from '@digicap/keyguard/local'
import type { CapsuleAnnouncement } from '@digicap/p2p'
import type { AnnounceOutcome } from '../announce/types.ts'
import { InputFileError, RuntimeUnsupportedError } from '../errors.ts'
import type { DeployedPolicyInfo, PolicyDeployer } from '../policy/types.ts'
import type {
  SealAndPublishComponents,
  SealAndPublishParameters,
  SealAndPublishResult,
  SealProgressFn,
} from './types.ts'

const RUNTIMES = ['data', 'quickjs', 'wasi', 'oci']

/**
 * The size of the regular file at `path`, the file to seal.
 * @throws {InputFileError} if it is missing, unreadable or not a regular file.
 */
export async function checkSealInput(path: string): Promise<number> {
  const input = await stat(path).catch((cause) => {
    throw new InputFileError('Cannot read the file to seal', {
      cause,
      details: { file: path, reason: (cause as NodeJS.ErrnoException).code },
    })
  })
  if (!input.isFile()) {
    throw new InputFileError('The file to seal is not a regular file', { details: { file: path } })
  }
  return input.size
}

/** Checks everything that can be checked before a transaction is sent. */
async function checkParameters(
  params: SealAndPublishParameters,
  components: SealAndPublishComponents,
): Promise<number> {
  const kind = params.runtime?.kind ?? 'data'
  if (!RUNTIMES.includes(kind)) {
    throw new RuntimeUnsupportedError('Unknown capsule runtime', { details: { runtime: kind } })
  }
  // A malformed receiver would fail only when the header is made, after the deployment.
  for (const r of params.receivers ?? []) parseReceiver(r)
  if (typeof params.policy === 'string' && !components.policies) {
    throw new InvalidArgumentError('A policy expression needs a policy deployer', {
      hint: 'Pass components.policies (solcPolicyDeployer), or a deployed policy { address }.',
    })
  }
  if (params.data !== undefined) {
    if (!(params.data instanceof Uint8Array) || params.input !== '') {
      throw new InvalidArgumentError('data is the plaintext as bytes, with input left empty', {
        hint: 'Seal a file (input) or bytes (data), not both.',
      })
    }
    return params.data.length
  }
  return checkSealInput(params.input)
}

/**
 * Seals `data` in memory (the header made once the policy address is known) and writes the
 * capsule to a temp file next to `output`, added by `put`, then renamed into place: the same
 * crash order as `commitAndSealFile`'s, with no plaintext file at any point.
 */
async function sealBytes(
  fields: Omit<CreateCapsuleHeaderParameters, 'policy' | 'plaintext'> & {
    policy: {
      chainId: number
      registry: `0x${string}`
      policy: `0x${string}` | Promise<`0x${string}`>
    }
  },
  data: Uint8Array,
  sign: (header: CapsuleHeader) => Promise<`0x${string}` | Uint8Array>,
  output: string,
  put: (writtenPath: string) => Promise<void>,
): Promise<{ header: CapsuleHeader }> {
  const header = createCapsuleHeader({
    ...fields,
    policy: { ...fields.policy, policy: await fields.policy.policy },
    plaintext: data,
  })
  const capsule = sealCapsule({
    header,
    signature: await sign(header),
    dataKey: fields.dataKey,
    plaintext: data,
  })
  const tmp = join(
    dirname(output),
    `.${basename(output)}.${process.pid}.${randomBytes(6).toString('hex')}.partial`,
  )
  const fh = await open(tmp, 'wx', 0o600)
  try {
    try {
      await fh.writeFile(capsule)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await put(tmp)
    await rename(tmp, output)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  return { header }
}

async function step<T>(
  progress: SealProgressFn,
  stage: 'policy' | 'register',
  fn: () => Promise<T>,
): Promise<T> {
  progress(stage, 0, 1)
  const out = await fn()
  progress(stage, 1, 1)
  return out
}

/** Announces through the component; its failure (even a throw) is an outcome, never an error. */
async function announce(
  components: SealAndPublishComponents,
  announcement: CapsuleAnnouncement,
): Promise<AnnounceOutcome> {
  if (!components.announcer) return { ok: false, reason: 'no-announcer' }
  try {
    return await components.announcer.announce(announcement)
  } catch (err) {
    return { ok: false, reason: err instanceof DigicapError ? String(err.code) : 'UNKNOWN' }
  }
}

/**
 * The owner's whole pipeline in one call: deploys the policy contract (or takes a deployed
 * one), wraps a fresh data key to the keyguard and to the recovery key, seals the file
 * (header signed by the owner), adds the capsule to IPFS, hands the wrapped keys to the key
 * record sink, registers the capsule on chain and announces it.
 *
 * Nothing here needs a private key of the keyguard: with {@link publicKeyWrapper} it runs on
 * a laptop. The plain data key lives only in memory and is zeroed before this returns.
 * The order is the crash order: a capsule is registered only once its blocks are added and
 * its key record is stored; the announcement comes last and never fails the call.
 *
 * @throws {InputFileError} | {RuntimeUnsupportedError} | {InvalidArgumentError} before any
 *   transaction; the policy parser's `PolicyExpressionError`; {CapsuleSignatureError} if the
 *   signer is not the owner it claims; the chain's decoded revert; the store's errors.
 * @example
 * ```ts
 * const r = await sealAndPublish(
 *   { input: 'photo.jpg', output: 'photo.capsule', policy: 'maxRuns(3)', chainId, registry,
 *     keyguardPeerId: card.peerId, recoveryPublicKey },
 *   { signer, wrapper: publicKeyWrapper(card.wrappingKey), policies, registrar, store },
 * )
 * ```
 */
export async function sealAndPublish(
  params: SealAndPublishParameters,
  components: SealAndPublishComponents,
): Promise<SealAndPublishResult> {
  const progress = params.onProgress ?? (() => {})
  const plaintextSize = await checkParameters(params, components)
  const runtime = params.runtime ?? { kind: 'data' }
  const capsuleIdBytes = params.capsuleId ?? generateCapsuleId()
  const capsuleId = toHex(capsuleIdBytes)
  // The policy contract is deployed while the payload is sealed: the header takes its address
  // only after the last chunk (capsule-core awaits it there). Anything that needs the capsule
  // (the add, the key record, the registration) still waits for both (ADR 0048).
  const deploying =
    typeof params.policy === 'string'
      ? step(progress, 'policy', () =>
          (components.policies as PolicyDeployer).deploy(params.policy as string),
        )
      : undefined
  const policyAddress = deploying
    ? deploying.then((d) => d.address)
    : (params.policy as { address: `0x${string}` }).address
  // Awaited by the seal (or below): a deployment failing first is not an unhandled rejection.
  if (policyAddress instanceof Promise) policyAddress.catch(() => {})
  try {
    return await sealThenPublish(params, components, {
      progress,
      plaintextSize,
      runtime,
      capsuleIdBytes,
      capsuleId,
      policyAddress,
      deploying,
    })
  } catch (err) {
    // A failed seal does not return while its deployment is still sending: the caller's
    // next step (a retry, removing the folder) must not race a transaction in flight.
    await deploying?.catch(() => {})
    throw err
  }
}

/**
 * Whether a failed registration proves the capsule id is not this owner's on chain: a revert
 * the chain named (decoded: the transaction was refused at estimation, nothing sent), and for
 * `CapsuleExists` an on-chain owner that is someone else. Anything else keeps the record.
 */
async function refusedForGood(
  err: unknown,
  components: SealAndPublishComponents,
  capsuleId: `0x${string}`,
): Promise<boolean> {
  const revert = err as { code?: unknown; errorName?: unknown }
  if (revert?.code !== 'CONTRACT_REVERT' || typeof revert.errorName !== 'string') return false
  if (revert.errorName !== 'CapsuleExists') return true
  const owner = await components.registrar.ownerOf?.(capsuleId).catch(() => undefined)
  return (
    owner !== undefined &&
    !/^0x0{40}$/.test(owner) &&
    owner.toLowerCase() !== components.signer.address.toLowerCase()
  )
}

interface SealContext {
  progress: SealProgressFn
  plaintextSize: number
  runtime: NonNullable<SealAndPublishParameters['runtime']>
  capsuleIdBytes: Uint8Array
  capsuleId: `0x${string}`
  policyAddress: `0x${string}` | Promise<`0x${string}`>
  deploying: Promise<DeployedPolicyInfo> | undefined
}

/** The seal, the add, the key record, the registration and the announcement, in that order. */
async function sealThenPublish(
  params: SealAndPublishParameters,
  components: SealAndPublishComponents,
  ctx: SealContext,
): Promise<SealAndPublishResult> {
  const { progress, plaintextSize, runtime, capsuleIdBytes, capsuleId } = ctx
  const wrappingKey = await components.wrapper.publicKey()
  // An image capsule's layers are sealed to its key before the capsule is: the caller made it.
  const dataKey = params.keys ? params.keys.dataKey.slice() : generateDataKey()
  let sealed: { header: CapsuleHeader }
  let cid = ''
  let wrappedKeys: SealAndPublishResult['wrappedKeys']
  try {
    wrappedKeys = params.keys
      ? [...params.keys.wrappedKeys]
      : [
          await components.wrapper.wrap(dataKey),
          await wrapToRecoveryKey(dataKey, params.recoveryPublicKey),
        ]
    const fields = {
      owner: components.signer.address,
      policy: {
        chainId: params.chainId,
        registry: params.registry as `0x${string}`,
        policy: ctx.policyAddress,
      },
      keyguard: {
        peerId: params.keyguardPeerId,
        keyId: wrappingKey.keyId,
        wrapScheme: wrappingKey.scheme,
      },
      runtime: {
        kind: runtime.kind,
        ...(runtime.entry !== undefined && runtime.kind !== 'data' ? { entry: runtime.entry } : {}),
        ...(runtime.memoryLimit !== undefined ? { memoryLimit: runtime.memoryLimit } : {}),
        ...(runtime.timeLimit !== undefined ? { timeLimit: runtime.timeLimit } : {}),
      },
      receivers: params.receivers ?? [],
      wrappedKeys,
      dataKey,
      capsuleId: capsuleIdBytes,
      formatVersion: params.formatVersion ?? 2,
    }
    const sign = (header: CapsuleHeader) =>
      signTypedDataWith(components.signer, capsuleTypedData(header))
    // Added while the capsule is flushed to disk, from its temp file (the page cache): the
    // output is renamed into place only once both are done, so a failed add leaves no
    // capsule, and a store that references the file names its final path.
    // A version 2 file seal hands over the digests of the bodies' 1 MiB leaves it hashed for the
    // commitment: the add then hashes only the leaves before them (ADR 0108).
    const put = async (writtenPath: string, pieces?: readonly FilePieceDigest[]) => {
      const size = (await stat(writtenPath)).size
      cid = await components.store.put(
        { path: writtenPath, referencePath: params.output, ...(pieces ? { pieces } : {}) },
        { onProgress: (n) => progress('add', n, size) },
      )
    }
    if (params.data !== undefined) {
      sealed = await sealBytes(fields, params.data, sign, params.output, async (path) => {
        progress('seal', plaintextSize, plaintextSize)
        await put(path)
      })
    } else {
      sealed = await commitAndSealFile({
        ...fields,
        sign,
        input: params.input,
        output: params.output,
        onProgress: (n) => progress('seal', n, plaintextSize),
        onWritten: put,
      })
    }
  } finally {
    dataKey.fill(0)
  }
  const deployedPolicy = await ctx.deploying
  const policy = deployedPolicy?.address ?? (ctx.policyAddress as `0x${string}`)
  const capsuleSize = (await stat(params.output)).size
  // The owner the keyguard checks the capsule's on-chain owner against before any release
  // (keyguard ADR 0071): a squatter that registers this id first owns it on chain, not here.
  const metadata = {
    owner: components.signer.address,
    cid,
    policy,
    chainId: String(params.chainId),
    registry: params.registry,
    runtime: runtime.kind,
  }
  await components.keyRecords?.put({ capsuleId, wrappedKeys, metadata })
  let transactionHash: string
  try {
    ;({ transactionHash } = await step(progress, 'register', () =>
      components.registrar.register({
        capsuleId,
        policy,
        cid,
        plaintextCommitment: sealed.header.payload.contentCommitment,
        keyguardPeerId: params.keyguardPeerId,
        keyguardKeyId: wrappingKey.keyId,
      }),
    ))
  } catch (err) {
    // No key record for a capsule id this owner does not hold on chain; but only when that is
    // proven: an unknown outcome (a lost receipt, a timeout, an RPC gone) may have registered
    // it, and a kept record releases nothing while the chain's owner is another (ADR 0071).
    if (await refusedForGood(err, components, capsuleId)) {
      await components.keyRecords?.delete?.(capsuleId).catch(() => undefined)
    }
    throw err
  }
  progress('announce', 0, 1)
  const announced = await announce(components, {
    capsuleId,
    cid,
    owner: components.signer.address,
    registry: params.registry as `0x${string}`,
    chainId: params.chainId,
    keyguardPeer: params.keyguardPeerId,
  })
  progress('announce', 1, 1)
  return {
    capsuleId,
    cid,
    policy,
    ...(deployedPolicy ? { deployedPolicy } : {}),
    registerTransaction: transactionHash,
    plaintextSize,
    capsuleSize,
    wrappedKeys,
    metadata,
    announced,
  }
}
