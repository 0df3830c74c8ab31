/** Decoding a body of any message type (v 1 control messages and v 2 result messages). */
import { decodeEnvelope } from './cbor.ts'
import { WireFormatError } from './errors.ts'
import {
  type AccessRequest,
  type AccessResponse,
  decodeAccessRequest,
  decodeAccessResponse,
  decodeErrorReply,
  decodeKeyRelease,
  decodeReleaseAck,
  type ErrorReply,
  type KeyRelease,
  type ReleaseAck,
} from './messages.ts'
import {
  decodeResultAck,
  decodeResultDelivery,
  type ResultAck,
  type ResultDelivery,
} from './result.ts'

/** Any decoded message, tagged with its type. */
export type AnyMessage =
  | { type: 'key-release'; message: KeyRelease }
  | { type: 'release-ack'; message: ReleaseAck }
  | { type: 'access-request'; message: AccessRequest }
  | { type: 'access-response'; message: AccessResponse }
  | { type: 'result-delivery'; message: ResultDelivery }
  | { type: 'result-ack'; message: ResultAck }
  | { type: 'error'; message: ErrorReply }

/**
 * Decodes a body of any type, dispatching on its `t` tag. Result messages must be `v: 2`,
 * every other type `v: 1`.
 *
 * @throws {WireFormatError} for malformed input or an unknown type tag.
 * @throws {WireVersionError} for a version the type does not have.
 */
export function decodeMessage(body: Uint8Array): AnyMessage {
  const { type } = decodeEnvelope(body, 'any')
  switch (type) {
    case 'result-delivery':
      return { type, message: decodeResultDelivery(body) }
    case 'result-ack':
      return { type, message: decodeResultAck(body) }
  }
  decodeEnvelope(body)
  switch (type) {
    case 'key-release':
      return { type, message: decodeKeyRelease(body) }
    case 'release-ack':
      return { type, message: decodeReleaseAck(body) }
    case 'access-request':
      return { type, message: decodeAccessRequest(body) }
    case 'access-response':
      return { type, message: decodeAccessResponse(body) }
    case 'error':
      return { type, message: decodeErrorReply(body) }
    default:
      throw new WireFormatError('Unknown message type', {
        details: { field: 't', reason: 'unknown-type', got: type.slice(0, 32) },
      })
  }
}
