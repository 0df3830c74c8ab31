/**
 * A keyprovider as a function: request bytes in, response bytes out. The wrapping and
 * unwrapping are components, so the same handler serves the file-based command of this package
 * and an executor's command whose unwrapper runs the grant flow.
 */
import { OciKeyError } from '../errors.ts'
import type { LayerRecipient, LayerUnwrapper } from '../recipients/recipient.ts'
import {
  type KeyProviderParameters,
  keyUnwrapResponse,
  keyWrapResponse,
  parseKeyProviderRequest,
} from './protocol.ts'

export interface KeyProviderHandlerInit {
  /** The provider name in ocicrypt's config (`digicap` → parameters under `digicap`). */
  name: string
  /** The recipient for one `--encryption-key provider:<name>:<value>` value. */
  recipientFor?: ((value: Uint8Array) => Promise<LayerRecipient>) | undefined
  /** The unwrapper for the `--decryption-key provider:<name>:<value>` values (may be none). */
  unwrapperFor(values: readonly Uint8Array[]): Promise<LayerUnwrapper>
}

function valuesOf(parameters: KeyProviderParameters, name: string): Uint8Array[] {
  return parameters[name] ?? []
}

/**
 * Builds the handler.
 * @example
 * ```ts
 * const handle = keyProviderHandler({ name: 'digicap', unwrapperFor: async () => digicapUnwrapper({ dataKey: grantFlow }) })
 * process.stdout.write(await handle(await readStdin()))
 * ```
 */
export function keyProviderHandler(
  init: KeyProviderHandlerInit,
): (request: Uint8Array) => Promise<Uint8Array> {
  return async (bytes) => {
    const request = parseKeyProviderRequest(bytes)
    const values = valuesOf(request.parameters, init.name)
    if (request.op === 'keywrap') {
      const [value, ...more] = values
      if (!value || more.length > 0 || !init.recipientFor) {
        throw new OciKeyError('keywrap needs exactly one parameter for this provider', {
          details: { provider: init.name, values: values.length },
          hint: `Encrypt with --encryption-key provider:${init.name}:<capsule key file>.`,
        })
      }
      const recipient = await init.recipientFor(value)
      return keyWrapResponse(await recipient.wrap(request.optsData))
    }
    const unwrapper = await init.unwrapperFor(values)
    return keyUnwrapResponse(await unwrapper.unwrap(request.annotation))
  }
}
