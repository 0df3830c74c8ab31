/**
 * The capsule key file the keyprovider command reads on the owner's machine: the capsule id,
 * its data key and the keyguard's wrapped copies. It holds a secret, so it must not be
 * readable by group or others.
 *
 *   {"capsuleId":"0x…","dataKey":b64(32 bytes),"wrappedKeys":[{"scheme","keyId","ciphertext":b64}]}
 */
import { readFile, stat } from 'node:fs/promises'
import {
  checkWrappedKey,
  type Hex,
  hexToBytes,
  toHex,
  type WrappedKey,
} from '@digicap/capsule-core'
import { decodeBase64, encodeBase64 } from '../encoding.ts'
import { OciFormatError, OciKeyError } from '../errors.ts'

export interface CapsuleKey {
  capsuleId: Hex
  dataKey: Uint8Array
  wrappedKeys: WrappedKey[]
}

/** The file's JSON text for a capsule key (write it with mode 0600). */
export function encodeCapsuleKey(key: CapsuleKey): string {
  return JSON.stringify({
    capsuleId: key.capsuleId,
    dataKey: encodeBase64(key.dataKey),
    wrappedKeys: key.wrappedKeys.map((w) => ({
      scheme: w.scheme,
      keyId: w.keyId,
      ciphertext: encodeBase64(w.ciphertext),
    })),
  })
}

/**
 * Reads a capsule key file.
 * @throws {OciKeyError} when it is missing or readable by group/others;
 *   {@link OciFormatError} when malformed.
 */
export async function readCapsuleKeyFile(path: string): Promise<CapsuleKey> {
  let mode: number
  let text: string
  try {
    mode = (await stat(path)).mode
    text = await readFile(path, 'utf8')
  } catch (cause) {
    throw new OciKeyError('Capsule key file cannot be read', { cause, details: { path } })
  }
  if ((mode & 0o077) !== 0) {
    throw new OciKeyError('Capsule key file is readable by others', {
      details: { path, mode: (mode & 0o777).toString(8) },
      hint: `chmod 600 ${path}`,
    })
  }
  try {
    const o = JSON.parse(text)
    const dataKey = decodeBase64(o.dataKey, 'dataKey')
    if (dataKey.length !== 32) throw new OciFormatError('dataKey must be 32 bytes')
    const wrappedKeys = (Array.isArray(o.wrappedKeys) ? o.wrappedKeys : []).map(
      (w: Record<string, unknown>, i: number) => {
        const key = {
          scheme: w.scheme,
          keyId: w.keyId,
          ciphertext: decodeBase64(w.ciphertext, `wrappedKeys[${i}].ciphertext`),
        } as WrappedKey
        checkWrappedKey(key, `wrappedKeys[${i}]`)
        return key
      },
    )
    return {
      capsuleId: toHex(hexToBytes(o.capsuleId, { length: 32, name: 'capsuleId' })),
      dataKey,
      wrappedKeys,
    }
  } catch (cause) {
    if (cause instanceof OciFormatError) throw cause
    throw new OciFormatError('Capsule key file is malformed', { cause, details: { path } })
  }
}
