/**
 * The strict layer decryptor. ocicrypt passes decrypted bytes on as they come and checks the
 * HMAC only at the end of the stream, after most of the plaintext has gone to the unpacker.
 * Here nothing decrypted leaves before every check has passed:
 *
 * 1. the ciphertext is spooled to a private file (0600 in a 0700 directory, bounded memory)
 *    while its HMAC, its SHA-256, its size and the SHA-256 of its decryption are computed;
 * 2. size, HMAC (constant time), blob digest and plain digest are compared;
 * 3. only then `stream()` decrypts the spool again, through the same open file handle.
 */
import { createDecipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { type FileHandle, mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip, createZstdDecompress } from 'node:zlib'
import { InvalidArgumentError } from '@digicap/capsule-core'
import { digestOf, type Sha256Digest } from '../encoding.ts'
import { OciIntegrityError, OciLimitError, OciTruncatedError } from '../errors.ts'
import type { PrivateLayerOptions, PublicLayerOptions } from './layer-options.ts'

/** Default largest encrypted layer accepted: 64 GiB. */
export const DEFAULT_MAX_LAYER_SIZE = 64 * 1024 ** 3

export interface OpenLayerOptions {
  private: PrivateLayerOptions
  public: PublicLayerOptions
  /** The encrypted blob's descriptor: checked when given (always give it for a manifest's layer). */
  expected?: { digest?: string | undefined; size?: number | undefined } | undefined
  /** Where the ciphertext is spooled (default `os.tmpdir()`; a tmpfs keeps it off disk). */
  spoolDir?: string | undefined
  /**
   * The layer's plain media type. ocicrypt stores the digest of the layer as the encryptor got
   * it; when skopeo compressed an uncompressed layer on the way, that is the digest of the
   * decompressed bytes. For `+gzip` / `+zstd` layers it is accepted when either matches.
   */
  mediaType?: string | undefined
  /** Largest ciphertext accepted, in bytes (default {@link DEFAULT_MAX_LAYER_SIZE}). */
  maxSize?: number | undefined
}

/** A layer whose ciphertext has been authenticated; its plaintext is not decrypted yet. */
export interface VerifiedLayer {
  /** The plain blob's digest (equal to the private options' digest) and size. */
  readonly digest: Sha256Digest
  readonly size: number
  /** The plain blob, decrypted from the spool. Once only; the spool is deleted when it ends. */
  stream(): Readable
  /** Deletes the spool without reading (idempotent). */
  dispose(): Promise<void>
}

type Ciphertext = AsyncIterable<Uint8Array> | Iterable<Uint8Array>

/**
 * Authenticates an encrypted layer and returns a handle on its plaintext.
 *
 * @throws {OciTruncatedError} if the blob is shorter than `expected.size`.
 * @throws {OciIntegrityError} `details.reason`: `size` (longer than expected), `hmac`,
 *   `blob-digest` (differs from `expected.digest`), `plain-digest` (the decryption's digest
 *   differs from the private options').
 * @throws {OciLimitError} for a ciphertext over `maxSize`.
 * @example
 * ```ts
 * const layer = await openLayer(createReadStream(blobPath), { private: priv, public: pub, expected: descriptor })
 * await pipeline(layer.stream(), createWriteStream(plainPath))
 * ```
 */
export async function openLayer(
  ciphertext: Ciphertext,
  options: OpenLayerOptions,
): Promise<VerifiedLayer> {
  const { symmetricKey, nonce } = options.private
  const maxSize = options.maxSize ?? DEFAULT_MAX_LAYER_SIZE
  const expectedSize = options.expected?.size
  if (expectedSize !== undefined && (!Number.isSafeInteger(expectedSize) || expectedSize < 0)) {
    throw new InvalidArgumentError('expected.size must be a non-negative integer')
  }
  const dir = await mkdtemp(join(options.spoolDir ?? tmpdir(), 'digicap-oci-'))
  let handle: FileHandle | undefined
  const cleanUp = async () => {
    await handle?.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
  try {
    handle = await open(join(dir, 'layer'), 'wx+', 0o600)
    const hmac = createHmac('sha256', symmetricKey)
    const blobHash = createHash('sha256')
    const plainHash = createHash('sha256')
    const decipher = createDecipheriv('aes-256-ctr', symmetricKey, nonce)
    let size = 0
    for await (const chunk of ciphertext) {
      size += chunk.length
      if (size > maxSize) {
        throw new OciLimitError('Encrypted layer is over the size limit', {
          details: { max: maxSize },
        })
      }
      if (expectedSize !== undefined && size > expectedSize) {
        throw new OciIntegrityError('Encrypted layer is longer than its descriptor says', {
          details: { reason: 'size', expected: expectedSize },
        })
      }
      hmac.update(chunk)
      blobHash.update(chunk)
      plainHash.update(decipher.update(chunk))
      await handle.write(chunk)
    }
    plainHash.update(decipher.final())
    if (expectedSize !== undefined && size < expectedSize) {
      throw new OciTruncatedError('Encrypted layer ended before its descriptor size', {
        details: { size, expected: expectedSize },
        hint: 'Fetch the blob again: the download or the file was cut.',
      })
    }
    if (!timingSafeEqual(hmac.digest(), options.public.hmac)) {
      throw new OciIntegrityError('Encrypted layer fails its HMAC', {
        details: { reason: 'hmac', size },
        hint: 'The blob was altered, cut or reordered, or the options belong to another layer.',
      })
    }
    const blobDigest = digestOf(blobHash.digest())
    if (options.expected?.digest !== undefined && blobDigest !== options.expected.digest) {
      throw new OciIntegrityError('Encrypted layer digest differs from its descriptor', {
        details: { reason: 'blob-digest', digest: blobDigest, expected: options.expected.digest },
      })
    }
    const plainDigest = digestOf(plainHash.digest())
    if (
      plainDigest !== options.private.digest &&
      (await uncompressedDigest(handle, { symmetricKey, nonce }, options.mediaType)) !==
        options.private.digest
    ) {
      throw new OciIntegrityError('Decrypted layer digest differs from its private options', {
        details: { reason: 'plain-digest', digest: plainDigest, expected: options.private.digest },
      })
    }
    return verifiedLayer(handle, { symmetricKey, nonce }, plainDigest, size, cleanUp)
  } catch (error) {
    await cleanUp()
    throw error
  }
}

function decryptingStream(
  handle: FileHandle,
  key: { symmetricKey: Uint8Array; nonce: Uint8Array },
): { source: Readable; plain: Transform } {
  const decipher = createDecipheriv('aes-256-ctr', key.symmetricKey, key.nonce)
  const source = handle.createReadStream({ start: 0, autoClose: false })
  const plain = new Transform({
    transform(chunk: Buffer, _e, callback) {
      callback(null, decipher.update(chunk))
    },
    flush(callback) {
      callback(null, decipher.final())
    },
  })
  return { source, plain }
}

/**
 * The digest of the decompressed plaintext, for a compressed media type (a second pass over
 * the already authenticated spool); undefined for other media types or a stream that does
 * not decompress.
 */
async function uncompressedDigest(
  handle: FileHandle,
  key: { symmetricKey: Uint8Array; nonce: Uint8Array },
  mediaType: string | undefined,
): Promise<Sha256Digest | undefined> {
  const decompress = mediaType?.endsWith('+gzip')
    ? createGunzip()
    : mediaType?.endsWith('+zstd')
      ? createZstdDecompress()
      : undefined
  if (!decompress) return undefined
  const { source, plain } = decryptingStream(handle, key)
  const hash = createHash('sha256')
  try {
    await pipeline(source, plain, decompress, async (chunks: AsyncIterable<Uint8Array>) => {
      for await (const chunk of chunks) hash.update(chunk)
    })
    return digestOf(hash.digest())
  } catch {
    return undefined
  }
}

function verifiedLayer(
  handle: FileHandle,
  key: { symmetricKey: Uint8Array; nonce: Uint8Array },
  digest: Sha256Digest,
  size: number,
  cleanUp: () => Promise<void>,
): VerifiedLayer {
  let streamed = false
  let disposed: Promise<void> | undefined
  const dispose = () => {
    disposed ??= cleanUp()
    return disposed
  }
  return {
    digest,
    size,
    stream() {
      if (streamed || disposed) {
        throw new InvalidArgumentError('The layer was already streamed or disposed')
      }
      streamed = true
      const { source, plain } = decryptingStream(handle, key)
      source.on('error', (error) => plain.destroy(error))
      plain.on('close', () => {
        source.destroy()
        void dispose()
      })
      return source.pipe(plain)
    },
    dispose,
  }
}
