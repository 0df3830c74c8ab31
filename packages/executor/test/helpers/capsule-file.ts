/**
 * A data capsule written to a file, as the loader leaves it in the run's workspace: signed by a
 * fixed owner key, with the parsed header and sizes the open takes (its `src`).
 */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  addressFromPrivateKey,
  createCapsuleHeader,
  generateDataKey,
  parseCapsuleHeader,
  sealCapsule,
  signCapsuleHeader,
} from '@digicap/capsule-core'

const OWNER_KEY = new Uint8Array(32).fill(7)
/** The address every capsule of {@link capsuleFile} is signed by. */
export const capsuleOwner = addressFromPrivateKey(OWNER_KEY)

/**
 * A capsule of `plaintext` in a new file under `dir`; `chunkSize` (capsule-core's default unless
 * given) sets how many chunks, so how many worker messages, its open takes.
 */
export async function capsuleFile(
  dir: string,
  plaintext: Uint8Array,
  options: { chunkSize?: number } = {},
) {
  const dataKey = generateDataKey()
  const header = createCapsuleHeader({
    owner: capsuleOwner,
    policy: {
      chainId: 31337,
      registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
      policy: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
    },
    keyguard: {
      peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
      keyId: 'test',
      wrapScheme: 'x25519-hpke',
    },
    runtime: { kind: 'data' },
    receivers: [],
    dataKey,
    plaintext,
    ...options,
  })
  const signature = signCapsuleHeader(header, OWNER_KEY)
  const bytes = sealCapsule({ header, signature, dataKey, plaintext })
  const path = join(dir, `capsule-${randomBytes(4).toString('hex')}.bin`)
  await writeFile(path, bytes)
  const parsed = parseCapsuleHeader(bytes)
  return {
    src: { path, owner: capsuleOwner, plaintextSize: plaintext.byteLength, parsed },
    dataKey,
    bytes,
  }
}
