/**
 * The libp2p peer id of an Ed25519 public key, without libp2p: the identity multihash of the
 * key's protobuf form, in base58btc (`12D3KooW…`). `@libp2p/crypto` and `@libp2p/peer-id`
 * load ~100 modules; every owner-node command needs the id, and `status` needs nothing else
 * of libp2p (ADR 0042). test/node/status-chain.test.ts checks it against `@libp2p/peer-id`.
 */
import { InvalidArgumentError } from '@digicap/capsule-core/light'

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

function base58btc(bytes: Uint8Array): string {
  let n = BigInt(`0x${Buffer.from(bytes).toString('hex')}`)
  let out = ''
  while (n > 0n) {
    out = BASE58[Number(n % 58n)] + out
    n /= 58n
  }
  for (const b of bytes) {
    if (b !== 0) break
    out = `1${out}`
  }
  return out
}

/**
 * libp2p peer id string of a raw 32-byte Ed25519 public key.
 * @throws {InvalidArgumentError} if `raw` is not 32 bytes.
 */
export function peerIdOfPublicKey(raw: Uint8Array): string {
  if (raw.length !== 32) {
    throw new InvalidArgumentError('An Ed25519 public key is 32 bytes', {
      details: { length: raw.length },
    })
  }
  // identity multihash (0x00, length 36) of the protobuf PublicKey { Type: Ed25519 (1), Data }
  const multihash = new Uint8Array([0x00, 36, 0x08, 0x01, 0x12, 32, ...raw])
  return base58btc(multihash)
}

/** The bytes of a base58btc string, or undefined for a character outside the alphabet. */
function fromBase58btc(text: string): Uint8Array | undefined {
  let n = 0n
  for (const ch of text) {
    const d = BASE58.indexOf(ch)
    if (d < 0) return undefined
    n = n * 58n + BigInt(d)
  }
  const hex = n === 0n ? '' : n.toString(16)
  const body = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex')
  let zeros = 0
  while (text[zeros] === '1') zeros++
  return new Uint8Array([...new Uint8Array(zeros), ...body])
}

/**
 * Whether `text` is a libp2p peer id in its base58btc form: the multihash of a public key,
 * identity (`12D3KooW…`, an inlined Ed25519 or secp256k1 key) or sha2-256 (`Qm…`, an RSA key).
 */
export function isPeerIdString(text: unknown): boolean {
  if (typeof text !== 'string' || text.length < 40 || text.length > 128) return false
  const mh = fromBase58btc(text)
  if (mh === undefined || mh.length < 2) return false
  if (mh[0] === 0x00) return mh[1] === mh.length - 2 && mh.length - 2 <= 42 && mh.length > 4
  return mh[0] === 0x12 && mh[1] === 0x20 && mh.length === 34
}
