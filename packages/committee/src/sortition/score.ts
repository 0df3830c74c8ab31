/** Fractional bits of {@link negLog2Uniform}. */
export const LOG2_FRACTION_BITS = 32

/** Mantissa bits of the squaring loop: x² stays below 2⁵² (exact in a double, and in a uint256). */
const MANTISSA_BITS = 25
const MANTISSA_ONE = 2 ** MANTISSA_BITS
const MANTISSA_TWO = 2 ** (MANTISSA_BITS + 1)

/**
 * −log₂(u) in fixed point (32 fractional bits) for u = (beta + 1) / 2²⁵⁶ ∈ (0, 1], beta a
 * 32-byte VRF output. Integer arithmetic only, so a contract computes the same value: with
 * e = ⌊log₂ m⌋ and x = ⌊m / 2^(e−25)⌋, 32 rounds of x ← ⌊x² / 2²⁵⌋ (halved, with a 1 bit, when
 * x ≥ 2²⁶) give the fraction bits (the binary logarithm by repeated squaring). The ordering must
 * not depend on a platform's floating point; every step here is an exact integer operation.
 * Error below 2⁻²³ in log₂ units (it only has to be the same everywhere, not exact).
 */
export function negLog2Uniform(beta: Uint8Array): bigint {
  // m = beta + 1 as bytes (bigint-free: this runs for every node on every job). A copy, never a
  // view: a Buffer's slice() shares its memory, and the + 1 below would change the caller's beta.
  const m = new Uint8Array(beta)
  let k = m.length - 1
  while (k >= 0 && m[k] === 0xff) m[k--] = 0
  if (k < 0) return 0n // m = 2²⁵⁶: u = 1
  m[k]! += 1
  let i = 0
  while (m[i] === 0) i++
  const lead = 31 - Math.clz32(m[i]!)
  const e = 8 * (m.length - 1 - i) + lead // ⌊log₂ m⌋
  // The top MANTISSA_BITS + 1 bits of m: x = ⌊m / 2^(e−25)⌋ (zero-padded past the last byte).
  let window = 0
  for (let j = 0; j < 5; j++) window = window * 256 + (m[i + j] ?? 0)
  let x = Math.floor(window / 2 ** (lead + 7))
  let frac = 0
  for (let bit = LOG2_FRACTION_BITS - 1; bit >= 0; bit--) {
    x = Math.floor((x * x) / MANTISSA_ONE)
    if (x >= MANTISSA_TWO) {
      x = Math.floor(x / 2)
      frac += 2 ** bit
    }
  }
  return BigInt((256 - e) * 2 ** LOG2_FRACTION_BITS - frac)
}

/**
 * The smallest weight (stake in wei × reputation) `CommitteeSortition` takes a ticket from: a
 * score is at most 2¹³⁶ / weight, so from 2⁴¹ on it fits the contract's 96-bit seat.
 */
export const MIN_SORTITION_WEIGHT = 1n << 41n

/**
 * The sortition score of a ticket: −log₂(u) · 2⁹⁶ / weight (integer division). Lower wins.
 * With u uniform, −ln(u)/w is exponential with rate w, so the lowest score is node i's with
 * probability wᵢ / Σw, and the k lowest are a weighted sample without replacement
 * (Efraimidis–Spirakis); log₂ instead of ln rescales every score alike.
 *
 * The first seat's score is exponential with mean 1.44 · 2¹²⁸ / Σw: below 2¹⁶ in ~0.3 % of jobs
 * at Σw = 2¹⁰⁴ (every ether there is, at the top reputation, is 2^96.6). With 2⁶⁴, as before
 * ADR 0024's amendment of 2026-12-06, the winning scores fell to a few integers past
 * Σw ≈ 2⁹⁰, where ties and rounding, not weight, picked the seats.
 */
export function sortitionScore(beta: Uint8Array, weight: bigint): bigint {
  return (negLog2Uniform(beta) << 96n) / weight
}
