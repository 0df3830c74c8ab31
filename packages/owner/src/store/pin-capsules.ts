import type { KeyStore } from '@digicap/keyguard'
import type { CapsuleStore } from '@digicap/p2p'

/**
 * Pins the blocks of the capsules a key store holds (the `cid` in each record's metadata), so
 * the keyguard's node keeps serving them. `onlyLocal`: pin only what is already in the
 * blockstore (no fetch; a daemon's start). One capsule's failure is reported, not thrown.
 *
 * @example
 * ```ts
 * const { pinned, failed } = await pinCapsules(keyStore, heliaCapsuleStore(node.helia), { onlyLocal: true })
 * ```
 */
export async function pinCapsules(
  keyStore: Pick<KeyStore, 'list' | 'get'>,
  store: Pick<CapsuleStore, 'pin' | 'has'>,
  options: {
    capsuleIds?: readonly string[]
    onlyLocal?: boolean
    timeoutMs?: number
    onProgress?: (done: number, total: number) => void
  } = {},
): Promise<{ pinned: string[]; failed: { capsuleId: string; code: string }[] }> {
  const ids = options.capsuleIds ?? (await keyStore.list())
  const out = { pinned: [] as string[], failed: [] as { capsuleId: string; code: string }[] }
  let done = 0
  for (const capsuleId of ids) {
    const cid = (await keyStore.get(capsuleId).catch(() => undefined))?.metadata.cid
    const wanted = cid && (!options.onlyLocal || (await store.has(cid).catch(() => false)))
    if (wanted) {
      const signal = options.timeoutMs ? AbortSignal.timeout(options.timeoutMs) : undefined
      await store.pin(cid, signal ? { signal } : {}).then(
        () => out.pinned.push(capsuleId),
        (err) => out.failed.push({ capsuleId, code: (err as { code?: string }).code ?? 'UNKNOWN' }),
      )
    }
    options.onProgress?.(++done, ids.length)
  }
  return out
}
