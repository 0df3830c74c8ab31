/**
 * The TPM key record: what the node pinned about its wrapping key at init, kept next to its
 * other state (JSON, mode 0600, written atomically). A key at the handle whose name differs
 * from the record is refused (`TpmSessionError`, `key-substituted`), and every unwrap session
 * is salted to the recorded public area, not to whatever the TPM reports.
 *
 * Format (SPEC.md "TPM key record"), version 1:
 * `{ "version": 1, "kind": "digicap/tpm2-key", "handle": "0x81000010", "keyId": "<hex>",
 *    "name": "<hex nameAlg‖SHA-256(TPMT_PUBLIC)>", "publicArea": "<hex TPMT_PUBLIC>" }`.
 * `publicArea` and `name` are absent for a key read through tpm2-tools (a TCTI without a
 * direct transport): then only `keyId` is compared.
 */
import { readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { parseRsaPublic, type RsaKeyPublic } from '@digicap/tpm'
import { KeyStoreCorruptError } from '../errors.ts'
import { ensureDir, writeFileAtomic } from '../store/fs-atomic.ts'

export const TPM2_KEY_RECORD_KIND = 'digicap/tpm2-key'

export interface Tpm2KeyRecord {
  version: 1
  kind: typeof TPM2_KEY_RECORD_KIND
  handle: string
  keyId: string
  name?: string
  publicArea?: string
}

const HEX = /^[0-9a-f]+$/

function corrupt(file: string, why: string): KeyStoreCorruptError {
  return new KeyStoreCorruptError('The TPM key record is not valid', {
    details: { file, why },
    hint: 'Restore the record from a backup, or recover from the paper words onto a new key.',
  })
}

/** Reads the record; `undefined` when the file does not exist. @throws {KeyStoreCorruptError} */
export async function readKeyRecord(file: string): Promise<Tpm2KeyRecord | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let v: Record<string, unknown>
  try {
    v = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw corrupt(file, 'json')
  }
  if (v?.kind !== TPM2_KEY_RECORD_KIND) throw corrupt(file, 'kind')
  if (v.version !== 1) throw corrupt(file, 'version')
  if (typeof v.handle !== 'string' || !/^0x81[0-7][0-9a-f]{5}$/.test(v.handle))
    throw corrupt(file, 'handle')
  if (typeof v.keyId !== 'string' || !/^[0-9a-f]{64}$/.test(v.keyId)) throw corrupt(file, 'keyId')
  const record: Tpm2KeyRecord = {
    version: 1,
    kind: TPM2_KEY_RECORD_KIND,
    handle: v.handle,
    keyId: v.keyId,
  }
  if (v.publicArea !== undefined || v.name !== undefined) {
    if (typeof v.publicArea !== 'string' || !HEX.test(v.publicArea))
      throw corrupt(file, 'publicArea')
    let pub: RsaKeyPublic
    try {
      pub = parseRsaPublic(Buffer.from(v.publicArea, 'hex'))
    } catch {
      throw corrupt(file, 'publicArea')
    }
    if (v.name !== Buffer.from(pub.name).toString('hex')) throw corrupt(file, 'name')
    record.publicArea = v.publicArea
    record.name = v.name
  }
  return record
}

/** Writes the record atomically, mode 0600. */
export async function writeKeyRecord(file: string, record: Tpm2KeyRecord): Promise<void> {
  await ensureDir(dirname(file))
  await writeFileAtomic(file, Buffer.from(`${JSON.stringify(record, null, 2)}\n`), { mode: 0o600 })
}
