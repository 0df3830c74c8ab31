/**
 * The strict decode options every canonical-CBOR format of Digicap uses (capsule header,
 * wire messages, code bundles, announcements). With them cborg refuses non-minimal
 * integers and lengths, indefinite lengths, duplicate or unsorted map keys, floats that are
 * not finite, `undefined`, tags and trailing bytes; each format then re-encodes what it
 * decoded and compares bytes, so only the one canonical encoding is accepted.
 */
import type { DecodeOptions } from 'cborg'

/** Options of {@link strictCborDecodeOptions}. */
export interface StrictCborOptions {
  /** Decode integers beyond 2^53 as bigint (the wire's u64 fields); refused when false. Default false. */
  allowBigInt?: boolean | undefined
}

/**
 * A fresh copy of the strict cborg decode options.
 *
 * @example
 * ```ts
 * const value = decode(bytes, strictCborDecodeOptions())
 * ```
 */
export function strictCborDecodeOptions(options: StrictCborOptions = {}): DecodeOptions {
  return {
    strict: true,
    allowIndefinite: false,
    allowUndefined: false,
    allowInfinity: false,
    allowNaN: false,
    allowBigInt: options.allowBigInt ?? false,
    rejectDuplicateMapKeys: true,
    useMaps: false,
    tags: [],
  }
}
