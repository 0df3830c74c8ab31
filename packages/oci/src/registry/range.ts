/** One `Range: bytes=…` header (RFC 9110 §14.1.2), the only form the endpoint serves. */

export interface ByteRange {
  start: number
  /** Inclusive. */
  end: number
}

/**
 * The range a header asks for within `size` bytes: `bytes=a-b`, `bytes=a-`, `bytes=-n`;
 * `undefined` when it is unsatisfiable or not one byte range (answered 416).
 */
export function parseRange(header: string, size: number): ByteRange | undefined {
  const match = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim())
  if (!match || (match[1] === '' && match[2] === '')) return undefined
  const [, first = '', last = ''] = match
  if (first === '') {
    const suffix = Number(last)
    if (suffix === 0 || size === 0) return undefined
    return { start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(first)
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1)
  if (start >= size || end < start) return undefined
  return { start, end }
}
