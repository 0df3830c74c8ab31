/** `commitAndSealFile`: commitment, header, signature and payload in one read of the input. */
import { type CreateCapsuleHeaderParameters, createCapsuleHeader, prepareSeal } from '../capsule.ts'
import type { Address } from '../encoding/address.ts'
import { checkBytes } from '../encoding/bytes.ts'
import type { Hex } from '../encoding/hex.ts'
import { InvalidArgumentError } from '../errors.ts'
import { gcmTagDelta, ghashKey } from '../ghash.ts'
import {
  CAPSULE_PREAMBLE_LENGTH,
  CAPSULE_SIGNATURE_LENGTH,
  type CapsuleHeader,
  CHUNK_TAG_LENGTH,
  DEFAULT_CHUNK_SIZE,
  encodeCapsuleHeader,
  type PolicyReference,
  V2_BODY_ALIGNMENT,
  V2_CHUNK_SIZE,
} from '../header.ts'
import {
  contentCommitmentCombiner,
  DATA_KEY_LENGTH,
  deriveCommitmentKey,
  derivePayloadKey,
  generateCapsuleId,
} from '../keys.ts'
import {
  chunkCountFor,
  chunkPlaintextLength,
  type ParsedCapsuleHeader,
  v2BodiesOffset,
} from '../parse.ts'
import { commitPlaintextFile } from './commit-file.ts'
import type { FilePieceDigest } from './hash-pieces.ts'
import { openRegularFile, openTarget, SEAL_INPUT_HINT, type Target, writeAtSync } from './io.ts'
import { LaneChunkFailure, runLanes } from './lanes.ts'
import { fileLimits } from './limits.ts'
import { inputChanged, writeSealed } from './seal-file.ts'
import { type FileThreadsOption, lanesFor } from './threads.ts'

/** Stands in for a late policy address while the header's length is fixed. */
const PLACEHOLDER_ADDRESS: Address = `0x${'00'.repeat(20)}`

/** Chunks (64 MiB at the default size) between two early syncs of the output. */
const WRITE_BACK_CHUNKS = 64

/** Parameters of {@link commitAndSealFile}: the header's fields, a signer and the files. */
export type CommitAndSealFileParameters = Omit<
  CreateCapsuleHeaderParameters,
  'plaintext' | 'commitment' | 'policy'
> &
  FileThreadsOption & {
    /**
     * The header's policy reference. Its contract address may be a promise (e.g. the policy
     * contract deployed while the payload is sealed): the header is made only after the last
     * chunk, so it is awaited then. If it rejects, no output is left and the call rejects
     * with its error. Every other field is checked before any chunk is sealed.
     */
    policy: Omit<PolicyReference, 'policy'> & { policy: Address | Promise<Address> }
    input: string
    output: string
    /**
     * Signs the finished header for its owner (EIP-712, `capsuleTypedData`): e.g.
     * `(header) => signCapsuleHeader(header, ownerKey)`, or a wallet's `signTypedData`.
     * Called once, after the payload is encrypted and before anything is renamed into place.
     */
    sign: (header: CapsuleHeader) => Uint8Array | Hex | Promise<Uint8Array | Hex>
    /** Called as chunks are written, with the plaintext bytes sealed so far. */
    onProgress?: (plaintextBytes: number) => void
    /**
     * Called once every byte of the capsule is written, with the path they can be read from
     * (a temp file next to `output`), while the capsule is flushed to disk: e.g. to add it to
     * IPFS during the flush instead of after it. `output` appears only once both are done; if
     * it rejects, the temp file is removed and the call rejects with its error. The file must
     * not be written to.
     *
     * `pieces`, for a version 2 capsule whose bodies sit on 1 MiB offsets (64 chunks or more):
     * the SHA-256 of every 1 MiB piece of the file from the first body to the end, which the
     * seal hashed anyway (they are the commitment's leaves), so an IPFS add of the file's 1 MiB
     * leaves hashes only the pieces before them.
     */
    onWritten?: (writtenPath: string, pieces?: readonly FilePieceDigest[]) => Promise<void>
  }

/**
 * Seals the file at `input` into a capsule at `output` in one read of the input: the
 * plaintext commitment, the header and the owner's signature are made along the way.
 *
 * Every chunk is hashed and encrypted in the same pass, on every core for inputs of 32 MiB
 * or more. The chunks are sealed before the header exists, so each chunk's GCM tag is first
 * computed for a zero AAD and then moved to the header hash (GHASH is linear in the AAD,
 * `ghash.ts`); the bytes are exactly those of {@link commitPlaintextFile} followed by
 * {@link sealFile}. Because the input is read once, the commitment always describes the
 * bytes that were encrypted, even if the file changes meanwhile (which then fails).
 * Outputs that take no positional writes (pipes) get the two passes instead.
 *
 * @returns the parsed, signed header.
 * @throws {InvalidArgumentError} for an invalid field, key or chunk size (before any work),
 *   an input that is not a regular file or that changes while it is read, or a signature
 *   of the wrong length.
 * @throws {CapsuleSignatureError} if `sign` returns a signature that is not the owner's.
 * @throws Node's file system errors (ENOENT, EACCES, ENOSPC, …) unchanged.
 * @example
 * ```ts
 * const parsed = await commitAndSealFile({
 *   owner, policy, keyguard, runtime: { kind: 'data' }, dataKey,
 *   sign: (header) => signCapsuleHeader(header, ownerKey),
 *   input: 'data.bin', output: 'data.capsule',
 * })
 * ```
 */
export async function commitAndSealFile(
  params: CommitAndSealFileParameters,
): Promise<ParsedCapsuleHeader> {
  const { input, output, sign, threads, keepWorkers, onProgress, onWritten, policy, ...fields } =
    params
  // A late address is only awaited at the end: a rejection before then is not unhandled.
  const late = policy?.policy instanceof Promise ? policy.policy : undefined
  late?.catch(() => {})
  checkBytes('dataKey', fields.dataKey, DATA_KEY_LENGTH)
  const dataKey = fields.dataKey
  const capsuleId = fields.capsuleId ?? generateCapsuleId()
  const createdAt = fields.createdAt ?? Math.floor(Date.now() / 1000)
  const v1 = (fields.formatVersion ?? 1) === 1
  const chunkSize = fields.chunkSize ?? (v1 ? DEFAULT_CHUNK_SIZE : V2_CHUNK_SIZE)
  const src = await openRegularFile(input, 'input', SEAL_INPUT_HINT)
  let target: Target | undefined
  try {
    const { size } = await src.stat()
    const headerFor = (commitment: Uint8Array, lateAddress?: Address): CapsuleHeader =>
      createCapsuleHeader({
        ...fields,
        policy: late ? { ...policy, policy: lateAddress as Address } : (policy as PolicyReference),
        capsuleId,
        createdAt,
        commitment: v1
          ? { plaintextSize: size, chunkSize, plaintextCommitment: commitment }
          : { plaintextSize: size, chunkSize, payloadCommitment: commitment },
      })
    // Every field is checked, and the payload's offset fixed, before any chunk is sealed:
    // the commitment (and a late policy address) are the only fields still to come, and both
    // have a fixed length (a placeholder address stands in for a late one).
    const headerLength = encodeCapsuleHeader(
      headerFor(new Uint8Array(32), PLACEHOLDER_ADDRESS),
    ).length
    const prefixLength = CAPSULE_PREAMBLE_LENGTH + headerLength + CAPSULE_SIGNATURE_LENGTH
    const chunkCount = chunkCountFor(size, chunkSize)
    target = await openTarget(output)
    if (onWritten && !target.regular) {
      throw new InvalidArgumentError('onWritten needs a regular file as the output', {
        details: { output },
        hint: 'Seal to a file path, or drop onWritten.',
      })
    }
    const positional = await target.positional()
    if (!v1 && !positional) {
      throw new InvalidArgumentError('a version 2 capsule is sealed into a regular file', {
        details: { output },
        hint: 'Its tag table is written before the bodies once they are sealed: give a file path.',
      })
    }
    // Version 2's table is at most 16 MiB by the format (1 TiB of payload): always held.
    const onePass =
      positional && (!v1 || chunkCount * CHUNK_TAG_LENGTH <= fileLimits.maxHeldTagBytes)
    const finish = async (commitment: Uint8Array) => {
      const header = headerFor(commitment, await late)
      const signature = await sign(header)
      return prepareSeal({ header, signature, dataKey })
    }
    if (!onePass) {
      const commitment = await commitPlaintextFile(input, dataKey, capsuleId, {
        chunkSize,
        ...(threads === undefined ? {} : { threads }),
        keepWorkers,
      })
      const { prefix, parsed, payloadKey } = await finish(commitment.plaintextCommitment)
      // The file is read twice: the encrypt pass hashes it again and must meet the commitment
      // (a same-size change in between would otherwise give a capsule that never opens).
      const commitmentKey = deriveCommitmentKey(dataKey, capsuleId)
      try {
        await writeSealed(src, target, prefix, parsed, payloadKey, {
          ...(threads === undefined ? {} : { threads }),
          keepWorkers,
          onProgress,
          commitmentKey,
        })
      } finally {
        payloadKey.fill(0)
        commitmentKey.fill(0)
      }
      await commitWith(target, onWritten)
      target = undefined
      return parsed
    }

    const zeroAad = new Uint8Array(32)
    const combiner = contentCommitmentCombiner(v1 ? 1 : 2, dataKey, capsuleId, chunkSize, size)
    const tags = new Uint8Array(chunkCount * CHUNK_TAG_LENGTH)
    // Version 2: the bodies' digests, the commitment's leaves and the file's 1 MiB IPFS leaves.
    const bodyDigests: Uint8Array[] = []
    const bodiesOffset = v1 ? prefixLength : v2BodiesOffset(prefixLength, chunkCount)
    const payloadKey = derivePayloadKey(dataKey, capsuleId)
    const h = ghashKey(payloadKey)
    try {
      await target.presize(
        v1 ? prefixLength + size + chunkCount * CHUNK_TAG_LENGTH : bodiesOffset + size,
      )
      let writtenBack = 0
      await runLanes({
        op: 'seal',
        inFd: src.fd,
        inBase: 0,
        outFd: target.fh.fd,
        outBase: bodiesOffset,
        ...(v1 ? {} : { tagBase: prefixLength }),
        key: payloadKey,
        aad: zeroAad,
        chunkSize,
        plaintextSize: size,
        chunkCount,
        lanes: Math.max(1, lanesFor(threads, size)),
        keepWorkers,
        ...(v1
          ? { onLeaf: (leaf: Uint8Array) => combiner.add(leaf) }
          : {
              onCipherLeaf: (leaf: Uint8Array) => {
                combiner.add(leaf)
                bodyDigests.push(leaf)
              },
            }),
        onTag: (i, tag) => tags.set(tag, i * CHUNK_TAG_LENGTH),
        onChunks: (done) => {
          onProgress?.(Math.min(size, done * chunkSize))
          if (done - writtenBack >= WRITE_BACK_CHUNKS) {
            writtenBack = done
            target?.writeBack()
          }
        },
      }).catch((err: unknown) => {
        if (!(err instanceof LaneChunkFailure)) throw err
        throw inputChanged(err.chunk)
      })
      if ((await src.stat()).size !== size) throw inputChanged(chunkCount)
      const { prefix, parsed, payloadKey: sealKey } = await finish(combiner.digest())
      sealKey.fill(0)
      if (prefix.length !== prefixLength) throw new Error('header length changed while sealing')
      // Move every tag from the zero AAD to the header hash, then write header and tags.
      const lastLength = chunkPlaintextLength(parsed.header, chunkCount - 1)
      const fullDelta = gcmTagDelta(h, zeroAad, parsed.headerHash, chunkSize)
      const lastDelta = gcmTagDelta(h, zeroAad, parsed.headerHash, lastLength)
      const stride = chunkSize + CHUNK_TAG_LENGTH
      // 16 bytes a chunk: synchronous writes into the page cache (~µs each), not one
      // thread-pool round trip per chunk (4 096 of them for 4 GiB, each a wait on a busy box).
      for (let i = 0; i < chunkCount; i++) {
        const delta = i === chunkCount - 1 ? lastDelta : fullDelta
        const tag = tags.subarray(i * CHUNK_TAG_LENGTH, (i + 1) * CHUNK_TAG_LENGTH)
        for (let b = 0; b < CHUNK_TAG_LENGTH; b++)
          tag[b] = (tag[b] as number) ^ (delta[b] as number)
        const length = i === chunkCount - 1 ? lastLength : chunkSize
        if (v1) writeAtSync(target.fh.fd, tag, prefixLength + i * stride + length)
      }
      // Version 2: the table in one write, after its last tag is final (ADR 0004: a tag for the
      // zero AAD is never written); the padding after it is the presized file's zeros.
      if (!v1) writeAtSync(target.fh.fd, tags, prefixLength)
      writeAtSync(target.fh.fd, prefix, 0)
      const pieces =
        !v1 && bodiesOffset % V2_BODY_ALIGNMENT === 0
          ? bodyDigests.map((digest, i) => ({
              offset: bodiesOffset + i * chunkSize,
              length: chunkPlaintextLength(parsed.header, i),
              digest,
            }))
          : undefined
      await commitWith(target, onWritten, pieces)
      target = undefined
      return parsed
    } finally {
      payloadKey.fill(0)
      h.fill(0)
      tags.fill(0)
    }
  } finally {
    await src.close()
    if (target) await target.abort()
  }
}

/** Flushes and renames the output, running `onWritten` on the written bytes meanwhile. */
function commitWith(
  target: Target,
  onWritten: CommitAndSealFileParameters['onWritten'],
  pieces?: readonly FilePieceDigest[],
) {
  return target.commit(onWritten && (() => onWritten(target.writtenPath, pieces)))
}
