/** A receiver's X25519 key in a file: 64 hex characters and a newline, mode 0600. */
import { readFile, writeFile } from 'node:fs/promises'
import { generateX25519KeyPair, hexToBytes, toHex, x25519PublicKey } from '@digicap/capsule-core'
import { ConfigError } from '@digicap/cli-kit'

/**
 * Generates a receiver key into `path` (never over an existing file) and returns its public key.
 * @example
 * ```ts
 * const publicKey = await createReceiverKeyFile(join(dataDir, 'receiver.key'))
 * ```
 */
export async function createReceiverKeyFile(path: string): Promise<Uint8Array> {
  const { privateKey } = generateX25519KeyPair()
  try {
    await writeFile(path, `${toHex(privateKey).slice(2)}\n`, { mode: 0o600, flag: 'wx' })
    return x25519PublicKey(privateKey)
  } finally {
    privateKey.fill(0)
  }
}

/**
 * Reads a receiver key file (64 hex characters, `0x` allowed).
 * @throws {ConfigError} (cli-kit's) for an unreadable file or one that is not 32 bytes of hex.
 */
export async function readReceiverKeyFile(path: string): Promise<Uint8Array> {
  let text: string
  try {
    text = (await readFile(path, 'utf8')).trim()
  } catch (cause) {
    throw new ConfigError('Cannot read the receiver key file', { cause, details: { path } })
  }
  if (!/^(0x)?[0-9a-fA-F]{64}$/.test(text)) {
    throw new ConfigError('The receiver key file is not 32 bytes of hex', { details: { path } })
  }
  return hexToBytes(text.startsWith('0x') ? text : `0x${text}`)
}
