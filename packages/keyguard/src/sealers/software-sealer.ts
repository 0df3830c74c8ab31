/**
 * The `software` sealer, for machines without a TPM: an RSA-2048 key in a 0600 PEM file.
 * Anyone who can read that file can unwrap every key, so the sealer is refused unless
 * `allowInsecure: true`, and it says so loudly in the log and in `describe()`.
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  type KeyObject,
  privateDecrypt,
} from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { promisify } from 'node:util'
import { SealerRefusedError, UnwrapError } from '../errors.ts'
import { ensureDir, writeFileAtomic } from '../store/fs-atomic.ts'
import { type Logger, stderrLogger, type WrappedKey } from '../types.ts'
import { RSA_BITS, RSA_CIPHERTEXT_LENGTH, rsaPublicKey, wrapWithPublicKey } from './rsa-oaep.ts'
import type { Sealer, SealerDescription, SealerPublicKey } from './sealer.ts'

const SCHEME = 'software-rsa-oaep-sha256' as const
const WARNING =
  'INSECURE: the software sealer keeps its private key in a file; anyone who can read it can unwrap every capsule key. Use a TPM.'

export interface SoftwareSealerInit {
  /** Path of the PEM (PKCS#8) private key file. It must be mode 0600 (or stricter). */
  keyFile: string
  /** Must be `true`: the caller accepts a key that is not hardware protected. */
  allowInsecure: boolean
  /** Create the key file if it does not exist. Default `false`. */
  createIfMissing?: boolean
  /** Where the insecurity warning goes. Default: JSON lines on stderr. */
  logger?: Logger
}

interface Loaded {
  privateKey: KeyObject
  publicKey: SealerPublicKey
}

/**
 * Creates a sealer whose RSA-2048 key lives in a file.
 *
 * @throws {SealerRefusedError} synchronously unless `allowInsecure` is `true`; from the first
 *   call if the key file is readable by group or others, not a regular file, missing (without
 *   `createIfMissing`), or not an RSA-2048 private key.
 * @example
 * ```ts
 * const sealer = softwareSealer({ keyFile: '/var/lib/digicap/sealer.pem', allowInsecure: true, createIfMissing: true })
 * const wrapped = await sealer.wrap(dataKey)
 * ```
 */
export function softwareSealer(init: SoftwareSealerInit): Sealer {
  if (init?.allowInsecure !== true) {
    throw new SealerRefusedError('The software sealer is not allowed by configuration', {
      details: { reason: 'not-allowed' },
      hint: 'Use the tpm2 sealer, or set allowInsecure: true if you accept a key in a file.',
    })
  }
  const logger = init.logger ?? stderrLogger('keyguard')
  logger.warn(WARNING, { keyFile: init.keyFile })
  let cached: Promise<Loaded> | undefined

  async function create(): Promise<void> {
    const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: RSA_BITS })
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' })
    await ensureDir(dirname(init.keyFile))
    try {
      await writeFileAtomic(init.keyFile, Buffer.from(pem), { mode: 0o600, exclusive: true })
      logger.warn('keyguard: created software sealer key file', { keyFile: init.keyFile })
    } catch (err) {
      // Another process created it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }

  async function load(): Promise<Loaded> {
    let info: Awaited<ReturnType<typeof stat>>
    try {
      info = await stat(init.keyFile)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !init.createIfMissing) {
        throw new SealerRefusedError('The software sealer key file is missing', {
          details: { reason: 'key-file-missing', keyFile: init.keyFile },
          hint: 'Run init (createIfMissing: true) or restore the key file.',
          cause: err,
        })
      }
      await create()
      info = await stat(init.keyFile)
    }
    if (!info.isFile()) {
      throw new SealerRefusedError('The software sealer key file is not a regular file', {
        details: { reason: 'key-file-type', keyFile: init.keyFile },
      })
    }
    if ((info.mode & 0o077) !== 0) {
      throw new SealerRefusedError('The software sealer key file is readable by others', {
        details: {
          reason: 'key-file-permissions',
          keyFile: init.keyFile,
          mode: (info.mode & 0o777).toString(8),
        },
        hint: `chmod 600 ${init.keyFile}`,
      })
    }
    const pem = await readFile(init.keyFile)
    let privateKey: KeyObject
    try {
      privateKey = createPrivateKey({ key: pem, format: 'pem' })
    } catch (cause) {
      throw new SealerRefusedError('The software sealer key file does not hold a private key', {
        details: { reason: 'key-file-invalid', keyFile: init.keyFile },
        cause,
      })
    } finally {
      pem.fill(0)
    }
    if (
      privateKey.asymmetricKeyType !== 'rsa' ||
      privateKey.asymmetricKeyDetails?.modulusLength !== RSA_BITS
    ) {
      throw new SealerRefusedError('The software sealer key is not RSA-2048', {
        details: { reason: 'key-file-invalid', keyFile: init.keyFile },
      })
    }
    const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' })
    return { privateKey, publicKey: rsaPublicKey(SCHEME, new Uint8Array(spki)) }
  }

  function loaded(): Promise<Loaded> {
    if (!cached) {
      cached = load()
      cached.catch(() => {
        cached = undefined
      })
    }
    return cached
  }

  return {
    async publicKey() {
      return (await loaded()).publicKey
    },

    async wrap(dataKey: Uint8Array): Promise<WrappedKey> {
      return wrapWithPublicKey((await loaded()).publicKey, dataKey)
    },

    async unwrap(wrapped: WrappedKey): Promise<Uint8Array> {
      const { privateKey, publicKey } = await loaded()
      if (wrapped?.scheme !== SCHEME || wrapped.keyId !== publicKey.keyId) {
        throw new UnwrapError('The wrapped key is not for this software key', {
          details: {
            scheme: wrapped?.scheme,
            keyId: wrapped?.keyId,
            expectedKeyId: publicKey.keyId,
          },
        })
      }
      if (
        !(wrapped.ciphertext instanceof Uint8Array) ||
        wrapped.ciphertext.length !== RSA_CIPHERTEXT_LENGTH
      ) {
        throw new UnwrapError('Wrapped key ciphertext has the wrong length', {
          details: { length: wrapped.ciphertext?.length, expected: RSA_CIPHERTEXT_LENGTH },
        })
      }
      try {
        const plain = privateDecrypt(
          { key: privateKey, oaepHash: 'sha256', padding: constants.RSA_PKCS1_OAEP_PADDING },
          wrapped.ciphertext,
        )
        return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength)
      } catch (cause) {
        throw new UnwrapError('The software key could not decrypt the wrapped key', {
          cause,
          hint: 'The ciphertext was not wrapped to this key, or it was altered.',
        })
      }
    },

    async describe(): Promise<SealerDescription> {
      const { publicKey } = await loaded()
      return {
        kind: 'software',
        scheme: SCHEME,
        keyId: publicKey.keyId,
        hardwareBacked: false,
        warning: WARNING,
        details: { keyFile: init.keyFile },
      }
    },
  }
}
