/**
 * A node's wallet words and receiver key (an executor's), sealed in one file
 * ({@link writeSealedSecrets}); an older install's plain files (`identity.json` with the
 * mnemonic, `receiver.key` with 64 hex digits, both 0600) are sealed on first open and removed.
 */
import { readFile } from 'node:fs/promises'
import type { Sealer } from '../sealers/sealer.ts'
import { corrupt } from './json-file.ts'
import {
  mnemonicEntropy,
  mnemonicFromEntropy,
  openSealedSecrets,
  writeSealedSecrets,
} from './sealed-secrets.ts'

export interface NodeSecretsFiles {
  /** The sealed file (`secrets.json`). */
  secrets: string
  /** Plain files of an older install. */
  identity: string
  receiverKey: string
}

export interface NodeSecrets {
  mnemonic: string
  /** X25519 private key. Zero it when done. */
  receiverKey: Uint8Array
}

/** Seals the words and the receiver key into `files.secrets` (replacing it). */
export async function sealNodeSecrets(
  files: NodeSecretsFiles,
  sealer: Sealer,
  secrets: NodeSecrets,
): Promise<void> {
  const entropy = mnemonicEntropy(secrets.mnemonic)
  await writeSealedSecrets(
    files.secrets,
    { mnemonic: entropy, receiverKey: secrets.receiverKey },
    sealer,
  )
  entropy.fill(0)
}

async function readPlain(files: NodeSecretsFiles): Promise<Record<string, Uint8Array>> {
  const identity = JSON.parse(await readFile(files.identity, 'utf8')) as { mnemonic?: unknown }
  if (typeof identity?.mnemonic !== 'string')
    corrupt(files.identity, 'bad-field', { field: 'mnemonic' })
  const hex = (await readFile(files.receiverKey, 'utf8')).trim().replace(/^0x/, '')
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) corrupt(files.receiverKey, 'bad-field', { field: 'key' })
  return {
    mnemonic: mnemonicEntropy(identity.mnemonic as string),
    receiverKey: new Uint8Array(Buffer.from(hex, 'hex')),
  }
}

/**
 * Unseals the words and the receiver key (sealing the plain files of an older install first).
 * @throws {KeyStoreCorruptError} when there are none (`missing`) or a file is malformed; the
 *   sealer's errors.
 */
export async function openNodeSecrets(
  files: NodeSecretsFiles,
  sealer: Sealer,
): Promise<NodeSecrets> {
  const legacy = { files: [files.identity, files.receiverKey], read: () => readPlain(files) }
  const s = await openSealedSecrets(files.secrets, sealer, legacy)
  const [words, receiverKey] = [s?.get('mnemonic'), s?.get('receiverKey')]
  if (words === undefined || receiverKey === undefined) corrupt(files.secrets, 'missing')
  const mnemonic = mnemonicFromEntropy(words)
  words.fill(0)
  return { mnemonic, receiverKey }
}
