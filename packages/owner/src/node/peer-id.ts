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
