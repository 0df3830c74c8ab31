/**
 * Layer encryption as ocicrypt does it (`blockcipher/blockcipher_aes_ctr.go`): AES-256-CTR with
 * a random 16-byte counter block, then HMAC-SHA256 over the ciphertext keyed with the same
 * symmetric key. The HMAC is known only at the end, so it goes into the public options.
 */
import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto'
import { Transform } from 'node:stream'
import { InvalidArgumentError } from '@digicap/capsule-core'
import { checkDigest, digestOf, type Sha256Digest } from '../encoding.ts'
import {
  CIPHER_AES_256_CTR_HMAC_SHA256,
  NONCE_LENGTH,
  type PrivateLayerOptions,
  type PublicLayerOptions,
  SYMMETRIC_KEY_LENGTH,
} from './layer-options.ts'

/** The result of a finished layer encryption. */
export interface EncryptedLayer {
  private: PrivateLayerOptions
  public: PublicLayerOptions
  /** Digest and size of the encrypted blob (the new descriptor's). */
  digest: Sha256Digest
  size: number
}

/** A running layer encryption: pipe the plain blob through `stream`, then call `result()`. */
export interface LayerEncryptor {
  /** Plain bytes in, ciphertext out. */
  readonly stream: Transform
  /** The options and the blob digest; only after `stream` has ended. */
  result(): EncryptedLayer
}

export interface LayerEncryptorOptions {
  /** Digest of the plain blob (ocicrypt stores it in the private options). */
  digest: string
  /** Fixed key and nonce, for test vectors only; random otherwise. */
  symmetricKey?: Uint8Array
  nonce?: Uint8Array
}

/**
 * Starts encrypting one layer blob.
 *
 * @throws {InvalidArgumentError} for a fixed key or nonce of the wrong length.
 * @example
 * ```ts
 * const enc = layerEncryptor({ digest: layer.digest })
 * await pipeline(createReadStream(blobPath), enc.stream, createWriteStream(outPath))
 * const { private: priv, public: pub, digest, size } = enc.result()
 * ```
 */
export function layerEncryptor(options: LayerEncryptorOptions): LayerEncryptor {
  const digest = checkDigest(options.digest, 'digest')
  const symmetricKey = options.symmetricKey ?? new Uint8Array(randomBytes(SYMMETRIC_KEY_LENGTH))
  const nonce = options.nonce ?? new Uint8Array(randomBytes(NONCE_LENGTH))
  if (symmetricKey.length !== SYMMETRIC_KEY_LENGTH || nonce.length !== NONCE_LENGTH) {
    throw new InvalidArgumentError('symmetricKey must be 32 bytes and nonce 16 bytes')
  }
  const cipher = createCipheriv('aes-256-ctr', symmetricKey, nonce)
  const hmac = createHmac('sha256', symmetricKey)
  const blobHash = createHash('sha256')
  let size = 0
  let done: EncryptedLayer | undefined
  const emit = (bytes: Buffer, push: (b: Buffer) => void) => {
    if (bytes.length === 0) return
    hmac.update(bytes)
    blobHash.update(bytes)
    size += bytes.length
    push(bytes)
  }
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      emit(cipher.update(chunk), (b) => this.push(b))
      callback()
    },
    flush(callback) {
      emit(cipher.final(), (b) => this.push(b))
      done = {
        private: { symmetricKey, digest, nonce },
        public: { cipher: CIPHER_AES_256_CTR_HMAC_SHA256, hmac: new Uint8Array(hmac.digest()) },
        digest: digestOf(blobHash.digest()),
        size,
      }
      callback()
    },
  })
  return {
    stream,
    result() {
      if (!done) throw new InvalidArgumentError('The layer stream has not ended yet')
      return done
    },
  }
}
