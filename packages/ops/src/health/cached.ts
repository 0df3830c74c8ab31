/**
 * A health answer reused for a window: whatever a check answers — success or failure — is kept
 * `ms` milliseconds, and callers in the meantime share it (one probe in flight at most). So a
 * status page reloaded in a loop or a scraper every second costs the TPM or the RPC at most
 * one call per window, and a failure turns into a success at most `ms` after the cause is gone.
 */
export function cachedAnswer<T>(ms: number, read: () => Promise<T>): () => Promise<T> {
  let at = Number.NEGATIVE_INFINITY
  let answer: Promise<T> | undefined
  return () => {
    if (answer === undefined || performance.now() - at >= ms) {
      at = performance.now()
      answer = read()
      // Kept as it is (rejected included); the catch only marks it handled.
      answer.catch(() => {})
    }
    return answer
  }
}
