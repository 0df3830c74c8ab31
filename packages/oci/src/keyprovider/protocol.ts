/**
 * ocicrypt's keyprovider protocol (containers/ocicrypt `keywrap/keyprovider/keyprovider.go`,
 * `docs/keyprovider.md`): one JSON object on stdin, one on stdout, `[]byte` fields as padded
 * base64, Go's field names. ocicrypt sends
 *
 *   {"op":"keywrap","keywrapparams":{"ec":{"Parameters":{"<name>":[b64…]},"DecryptConfig":{"Parameters":{}}},"optsdata":b64},
 *    "keyunwrapparams":{"dc":null,"annotation":null}}
 *   {"op":"keyunwrap","keywrapparams":{"ec":null,"optsdata":null},
 *    "keyunwrapparams":{"dc":{"Parameters":{"<name>":[b64…]}},"annotation":b64}}
 *
 * and reads `{"keywrapresults":{"annotation":b64}}` / `{"keyunwrapresults":{"optsdata":b64}}`.
 */
import { decodeBase64, encodeBase64 } from '../encoding.ts'
import { OciFormatError, OciLimitError } from '../errors.ts'

/** Largest request read from stdin. */
export const MAX_KEYPROVIDER_REQUEST_LENGTH = 1024 * 1024

/** `Parameters` of an ocicrypt EncryptConfig / DecryptConfig: name → list of byte strings. */
export type KeyProviderParameters = Record<string, Uint8Array[]>

export type KeyProviderRequest =
  | { op: 'keywrap'; parameters: KeyProviderParameters; optsData: Uint8Array }
  | { op: 'keyunwrap'; parameters: KeyProviderParameters; annotation: Uint8Array }

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function parameters(value: unknown, name: string): KeyProviderParameters {
  if (value === null || value === undefined) return {}
  if (!isObject(value)) throw new OciFormatError(`${name} is not an object`)
  const out: KeyProviderParameters = {}
  for (const [key, list] of Object.entries(value)) {
    if (list === null) continue
    if (!Array.isArray(list)) throw new OciFormatError(`${name}.${key} is not a list`)
    out[key] = list.map((item, i) => decodeBase64(item, `${name}.${key}[${i}]`))
  }
  return out
}

/**
 * Parses what ocicrypt writes to a keyprovider's stdin.
 * @throws {OciFormatError} for anything else; {@link OciLimitError} over 1 MiB.
 */
export function parseKeyProviderRequest(bytes: Uint8Array): KeyProviderRequest {
  if (bytes.length > MAX_KEYPROVIDER_REQUEST_LENGTH) {
    throw new OciLimitError('Keyprovider request is too long', {
      details: { length: bytes.length, max: MAX_KEYPROVIDER_REQUEST_LENGTH },
    })
  }
  let input: unknown
  try {
    input = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (cause) {
    throw new OciFormatError('Keyprovider request is not JSON', { cause })
  }
  if (!isObject(input)) throw new OciFormatError('Keyprovider request is not a JSON object')
  if (input.op === 'keywrap') {
    const params = input.keywrapparams
    if (!isObject(params) || !isObject(params.ec)) {
      throw new OciFormatError('keywrap request has no keywrapparams.ec')
    }
    return {
      op: 'keywrap',
      parameters: parameters(params.ec.Parameters, 'ec.Parameters'),
      optsData: decodeBase64(params.optsdata, 'keywrapparams.optsdata'),
    }
  }
  if (input.op === 'keyunwrap') {
    const params = input.keyunwrapparams
    if (!isObject(params)) throw new OciFormatError('keyunwrap request has no keyunwrapparams')
    return {
      op: 'keyunwrap',
      parameters: parameters(
        isObject(params.dc) ? params.dc.Parameters : undefined,
        'dc.Parameters',
      ),
      annotation: decodeBase64(params.annotation, 'keyunwrapparams.annotation'),
    }
  }
  throw new OciFormatError('Keyprovider op must be keywrap or keyunwrap', {
    details: { op: typeof input.op === 'string' ? input.op.slice(0, 32) : typeof input.op },
  })
}

/** The answer to a keywrap request. */
export function keyWrapResponse(annotation: Uint8Array): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({ keywrapresults: { annotation: encodeBase64(annotation) } }),
  )
}

/** The answer to a keyunwrap request. */
export function keyUnwrapResponse(optsData: Uint8Array): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({ keyunwrapresults: { optsdata: encodeBase64(optsData) } }),
  )
}
