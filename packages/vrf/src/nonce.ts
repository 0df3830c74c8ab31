import { createHmacDrbg, numberToBytesBE } from '@noble/curves/utils.js'
import { hmac } from '@noble/hashes/hmac.js'
import { concatBytes } from '@noble/hashes/utils.js'
import type { EcvrfSuite } from './suite.ts'

/**
 * RFC 9381 §5.4.2.1: the RFC 6979 §3.2 deterministic nonce for secret scalar `x`, with
 * m = point_to_string(H). noble supplies the HMAC-DRBG; the bits2int / bits2octets framing is
 * RFC 6979's, spelled out because noble keeps its own inside `sign`.
 */
export function nonceRfc6979(suite: EcvrfSuite, x: bigint, hString: Uint8Array): bigint {
  const q = suite.Point.Fn.ORDER
  const qlen = q.toString(2).length
  const rlen = Math.ceil(qlen / 8)
  const bits2int = (b: Uint8Array): bigint => {
    let v = b.length === 0 ? 0n : BigInt(`0x${Buffer.from(b).toString('hex')}`)
    const blen = b.length * 8
    if (blen > qlen) v >>= BigInt(blen - qlen)
    return v
  }
  const h1 = suite.hash(hString)
  const seed = concatBytes(numberToBytesBE(x, rlen), numberToBytesBE(bits2int(h1) % q, rlen))
  const drbg = createHmacDrbg<bigint>(
    suite.hash.outputLen,
    rlen,
    (key: Uint8Array, msg: Uint8Array) => hmac(suite.hash, key, msg),
  )
  return drbg(seed, (t) => {
    const k = bits2int(t)
    return k >= 1n && k < q ? k : undefined
  })
}
