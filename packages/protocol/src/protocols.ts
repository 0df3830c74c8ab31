/**
 * The three Digicap protocols as values: id, default frame limit, and the codecs of the
 * request (opener → responder) and the response. Pass one to {@link request} and {@link handle}.
 */
import { MAX_CONTROL_FRAME, MAX_RESULT_FRAME } from './frame.ts'
import {
  type AccessRequest,
  type AccessResponse,
  decodeAccessRequest,
  decodeAccessResponse,
  decodeKeyRelease,
  decodeReleaseAck,
  encodeAccessRequest,
  encodeAccessResponse,
  encodeKeyRelease,
  encodeReleaseAck,
  type KeyRelease,
  type ReleaseAck,
} from './messages.ts'
import {
  decodeResultAck,
  decodeResultDelivery,
  encodeResultAck,
  encodeResultDelivery,
  type ResultAck,
  type ResultDelivery,
} from './result.ts'

/** Keyguard → executor push of a released data key. */
export const KEY_RELEASE_PROTOCOL = '/digicap/key-release/1.0.0'
/** Executor → keyguard signed access request (fast path). */
export const FAST_PATH_PROTOCOL = '/digicap/fast-path/1.0.0'
/** Executor → receiver delivery of a signed, sealed result (v 2: signed by the executor). */
export const RESULT_PROTOCOL = '/digicap/result/2.0.0'

/** A request/response protocol: one request frame, one response (or `error`) frame. */
export interface WireProtocol<Req, Res> {
  /** The libp2p protocol id. */
  readonly id: string
  /** Default largest body, in bytes, of either frame. */
  readonly maxSize: number
  readonly encodeRequest: (message: Req) => Uint8Array
  readonly decodeRequest: (body: Uint8Array) => Req
  readonly encodeResponse: (message: Res) => Uint8Array
  readonly decodeResponse: (body: Uint8Array) => Res
}

/** `/digicap/key-release/1.0.0`: {@link KeyRelease} → {@link ReleaseAck}. */
export const keyReleaseProtocol: WireProtocol<KeyRelease, ReleaseAck> = {
  id: KEY_RELEASE_PROTOCOL,
  maxSize: MAX_CONTROL_FRAME,
  encodeRequest: encodeKeyRelease,
  decodeRequest: decodeKeyRelease,
  encodeResponse: encodeReleaseAck,
  decodeResponse: decodeReleaseAck,
}

/** `/digicap/fast-path/1.0.0`: {@link AccessRequest} → {@link AccessResponse}. */
export const fastPathProtocol: WireProtocol<AccessRequest, AccessResponse> = {
  id: FAST_PATH_PROTOCOL,
  maxSize: MAX_CONTROL_FRAME,
  encodeRequest: encodeAccessRequest,
  decodeRequest: decodeAccessRequest,
  encodeResponse: encodeAccessResponse,
  decodeResponse: decodeAccessResponse,
}

/** `/digicap/result/2.0.0`: {@link ResultDelivery} → {@link ResultAck}. */
export const resultProtocol: WireProtocol<ResultDelivery, ResultAck> = {
  id: RESULT_PROTOCOL,
  maxSize: MAX_RESULT_FRAME,
  encodeRequest: encodeResultDelivery,
  decodeRequest: decodeResultDelivery,
  encodeResponse: encodeResultAck,
  decodeResponse: decodeResultAck,
}
