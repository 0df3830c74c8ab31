/**
 * KDFa (TPM 2.0 Part 1 §11.4.10.2): SP 800-108 counter-mode KDF with HMAC.
 * K(i) = HMAC(key, [i]32 ‖ label ‖ 0x00 ‖ contextU ‖ contextV ‖ [bits]32), concatenated and cut
 * to `bits`. Sessions use it for the session key ("ATH") and the CFB key and IV ("CFB").
 * `@digicap/attestation` uses it for MakeCredential (TPM 2.0 Part 1 §24).
 */
import { createHmac } from 'node:crypto'

export type TpmHashName = 'sha1' | 'sha256' | 'sha384' | 'sha512'

export function kdfa(
  hash: TpmHashName,
  key: Uint8Array,
  label: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  const bytes = Math.ceil(bits / 8)
  const out = new Uint8Array(bytes)
  const labelBytes = Buffer.from(`${label}\0`, 'latin1')
  const bitsBytes = new Uint8Array(4)
  new DataView(bitsBytes.buffer).setUint32(0, bits)
  const counterBytes = new Uint8Array(4)
  let at = 0
  for (let counter = 1; at < bytes; counter++) {
    new DataView(counterBytes.buffer).setUint32(0, counter)
    const block = createHmac(hash, key)
      .update(counterBytes)
      .update(labelBytes)
      .update(contextU)
      .update(contextV)
      .update(bitsBytes)
      .digest()
    out.set(block.subarray(0, Math.min(block.length, bytes - at)), at)
    block.fill(0)
    at += block.length
  }
  // A partial last byte keeps its low bits, as the reference implementation does.
  if (bits % 8 !== 0) out[0] = (out[0] ?? 0) & ((1 << (bits % 8)) - 1)
  return out
}
