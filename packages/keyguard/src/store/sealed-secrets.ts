/**
 * A node's own secrets (an executor's wallet words and receiver key) wrapped to a sealer in one
 * file, instead of plain 0600 files: whoever copies the data folder (a backup, a stolen SD
 * card) gets ciphertext unless they also hold the sealer's key (the TPM; for the software
 * sealer, its key file). Plain files of an older install are sealed on first open, then
 * overwritten and removed.
 *
 * File format, version 1 (JSON, mode 0600, written atomically):
 * `{ "version": 1, "kind": "digicap/sealed-secrets", "secrets": { "<name>": <wrapped>, … } }`
 * where `<wrapped>` is `{ "scheme", "keyId", "ciphertext": "<base64>" }` (the owner file's form).
 */
import { open, rm, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { entropyToMnemonic, mnemonicToEntropy } from '@scure/bip39'
import { wordlist } from '@scure/bip39/wordlists/english.js'
import { normalizeMnemonic } from '../recovery/recovery.ts'
import type { Sealer } from '../sealers/sealer.ts'
import { unwrapDataKey } from '../sealers/wrap.ts'
import { ensureDir, writeFileAtomic } from './fs-atomic.ts'
import { checkKeys, corrupt, encodeWrappedKey, parseWrappedKey, readJsonFile } from './json-file.ts'

export const SEALED_SECRETS_KIND = 'digicap/sealed-secrets'

/** Seals `secrets` (1–190 bytes each) to `sealer` into `path`, replacing it atomically. */
export async function writeSealedSecrets(
  path: string,
  secrets: Readonly<Record<string, Uint8Array>>,
  sealer: Sealer,
): Promise<void> {
  const wrapped: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(secrets)) {
    wrapped[name] = encodeWrappedKey(await sealer.wrap(value))
  }
  const body = { version: 1, kind: SEALED_SECRETS_KIND, secrets: wrapped }
  await ensureDir(dirname(path))
  await writeFileAtomic(path, new TextEncoder().encode(`${JSON.stringify(body, null, 2)}\n`))
}

/**
 * Unwraps every secret in `path`; `undefined` when the file does not exist. The caller zeroes them.
 * @throws {KeyStoreCorruptError} for a malformed file; the sealer's errors (`UNWRAP`, TPM errors).
 */
export async function readSealedSecrets(
  path: string,
  sealer: Sealer,
): Promise<Map<string, Uint8Array> | undefined> {
  const obj = await readJsonFile(path)
  if (obj === undefined) return undefined
  checkKeys(path, obj, ['version', 'kind', 'secrets'])
  if (obj.version !== 1 || obj.kind !== SEALED_SECRETS_KIND) corrupt(path, 'unknown-version')
  const secrets = obj.secrets
  if (typeof secrets !== 'object' || secrets === null || Array.isArray(secrets)) {
    corrupt(path, 'bad-field', { field: 'secrets' })
  }
  const out = new Map<string, Uint8Array>()
  for (const [name, item] of Object.entries(secrets as Record<string, unknown>)) {
    out.set(name, await unwrapDataKey([parseWrappedKey(path, name, item)], sealer))
  }
  return out
}

/** Overwrites a plain secret file with zeros before removing it (best effort on flash). */
async function shred(file: string): Promise<void> {
  const handle = await open(file, 'r+').catch(() => undefined)
  if (handle === undefined) return
  try {
    const { size } = await handle.stat()
    await handle.write(new Uint8Array(size), 0, size, 0)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rm(file, { force: true })
}

/**
 * The sealed secrets at `path`; when there are none yet but an older install left plain ones,
 * `legacy.read()` reads those, they are sealed into `path`, and `legacy.files` are overwritten
 * and removed (migration; a crash in between leaves the plain files, and the next open seals
 * them again). `undefined` when neither exists.
 */
export async function openSealedSecrets(
  path: string,
  sealer: Sealer,
  legacy?: { files: readonly string[]; read: () => Promise<Record<string, Uint8Array>> },
): Promise<Map<string, Uint8Array> | undefined> {
  const sealed = await readSealedSecrets(path, sealer)
  if (sealed !== undefined || legacy === undefined) {
    if (sealed !== undefined && legacy !== undefined) for (const f of legacy.files) await shred(f)
    return sealed
  }
  const present = await Promise.all(
    legacy.files.map((f) =>
      stat(f).then(
        () => true,
        () => false,
      ),
    ),
  )
  if (!present.some(Boolean)) return undefined
  const plain = await legacy.read()
  await writeSealedSecrets(path, plain, sealer)
  for (const f of legacy.files) await shred(f)
  return new Map(Object.entries(plain))
}

/** A BIP-39 mnemonic as its entropy (16–32 bytes: what a sealer wraps), normalized first. */
export function mnemonicEntropy(mnemonic: string): Uint8Array {
  return mnemonicToEntropy(normalizeMnemonic(mnemonic), wordlist)
}

/** The mnemonic of {@link mnemonicEntropy}'s bytes. */
export function mnemonicFromEntropy(entropy: Uint8Array): string {
  return entropyToMnemonic(entropy, wordlist)
}
