/**
 * The Digicap recipient, `provider.digicap` (annotation
 * `org.opencontainers.image.enc.keys.provider.digicap`): only an executor that the capsule's
 * policy granted gets the data key from the keyguard, so only it opens the layer options.
 */
import {
  checkWrappedKey,
  type Hex,
  hexToBytes,
  InvalidArgumentError,
  toHex,
  type WrappedKey,
} from '@digicap/capsule-core'
import { OciKeyError } from '../errors.ts'
import type { LayerRecipient, LayerUnwrapper } from '../recipients/recipient.ts'
import {
  MAX_DIGICAP_WRAPPED_KEYS,
  openDigicapPayload,
  parseDigicapPayload,
  sealDigicapPayload,
} from './payload.ts'

/** The protocol name: ocicrypt's keyprovider convention `provider.<name>`. */
export const DIGICAP_PROTOCOL = 'provider.digicap'

export interface DigicapRecipientInit {
  /** The image capsule's id (32 bytes). */
  capsuleId: Hex | Uint8Array
  /** The capsule data key (32 bytes). The recipient keeps a copy; zero yours when done. */
  dataKey: Uint8Array
  /**
   * The data key as the keyguard wrapped it (`sealer.wrap(dataKey)`, `wrapDataKey`,
   * `wrapWithPublicKey` from `@digicap/keyguard`).
   */
  wrappedKeys: readonly WrappedKey[]
}

/**
 * A recipient that seals each layer's options for the capsule.
 * @throws {InvalidArgumentError} for a bad capsule id, data key or wrapped key.
 * @example
 * ```ts
 * const wrappedKeys = await wrapDataKey(dataKey, { sealer, recoveryPublicKey })
 * const recipient = digicapRecipient({ capsuleId, dataKey, wrappedKeys })
 * ```
 */
export function digicapRecipient(init: DigicapRecipientInit): LayerRecipient {
  const capsuleId = toHex(
    typeof init.capsuleId === 'string'
      ? hexToBytes(init.capsuleId, { length: 32, name: 'capsuleId' })
      : hexToBytes(toHex(init.capsuleId), { length: 32, name: 'capsuleId' }),
  )
  init.wrappedKeys.forEach((w, i) => {
    checkWrappedKey(w, `wrappedKeys[${i}]`)
  })
  if (!(init.dataKey instanceof Uint8Array) || init.dataKey.length !== 32) {
    throw new InvalidArgumentError('dataKey must be 32 bytes')
  }
  if (init.wrappedKeys.length === 0 || init.wrappedKeys.length > MAX_DIGICAP_WRAPPED_KEYS) {
    throw new InvalidArgumentError('wrappedKeys must hold 1..8 wrapped copies of the data key')
  }
  const dataKey = Uint8Array.from(init.dataKey)
  const wrappedKeys = [...init.wrappedKeys]
  return {
    protocol: DIGICAP_PROTOCOL,
    wrap: async (privateOptions) =>
      sealDigicapPayload(privateOptions, { capsuleId, dataKey, wrappedKeys }),
  }
}

/** What a data key source is asked for: the capsule and the keyguard's wrapped copies. */
export interface DataKeyRequest {
  capsuleId: Hex
  wrappedKeys: readonly WrappedKey[]
}

export interface DigicapUnwrapperInit {
  /**
   * Gets the capsule data key: through the grant flow on an executor, or with the keyguard's
   * sealer on the owner's machine (`unwrapDataKey(request.wrappedKeys, sealer)`).
   * Called once per capsule; the key is kept until `dispose()`.
   */
  dataKey(request: DataKeyRequest): Promise<Uint8Array>
  /** When set, payloads naming another capsule are refused before the data key is asked for. */
  capsuleId?: Hex | undefined
}

/** A Digicap unwrapper, with `dispose()` to zero the data keys it holds. */
export interface DigicapUnwrapper extends LayerUnwrapper {
  dispose(): void
}

/** Opens `provider.digicap` recipients with data keys from `init.dataKey`. */
export function digicapUnwrapper(init: DigicapUnwrapperInit): DigicapUnwrapper {
  const expected = init.capsuleId?.toLowerCase()
  const keys = new Map<string, Promise<Uint8Array>>()
  return {
    protocol: DIGICAP_PROTOCOL,
    async unwrap(bytes) {
      const payload = parseDigicapPayload(bytes)
      if (expected !== undefined && payload.capsuleId !== expected) {
        throw new OciKeyError('Layer is sealed for another capsule', {
          details: { capsule: payload.capsuleId, expected },
        })
      }
      let key = keys.get(payload.capsuleId)
      if (!key) {
        key = init.dataKey({ capsuleId: payload.capsuleId, wrappedKeys: payload.wrappedKeys })
        keys.set(payload.capsuleId, key)
        key.catch(() => keys.delete(payload.capsuleId))
      }
      return openDigicapPayload(payload, await key)
    },
    dispose() {
      for (const key of keys.values()) void key.then((k) => k.fill(0)).catch(() => {})
      keys.clear()
    },
  }
}
