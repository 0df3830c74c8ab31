import { expect, it } from 'vitest'
import * as api from './index.ts'

it('the public surface changes only on purpose', () => {
  expect(Object.keys(api).sort()).toMatchInlineSnapshot(`
    [
      "ACCESS_DOMAIN_NAME",
      "ACCESS_DOMAIN_VERSION",
      "ACCESS_REQUEST_TYPES",
      "ADDRESS_LENGTH",
      "DATA_KEY_LENGTH",
      "DEFAULT_TIMEOUT_MS",
      "FAST_PATH_PROTOCOL",
      "HandlerFailedError",
      "ID_LENGTH",
      "KEY_RELEASE_HPKE_LENGTH",
      "KEY_RELEASE_PROTOCOL",
      "MAX_CONTROL_FRAME",
      "MAX_FRAME_LIMIT",
      "MAX_RESULT_FRAME",
      "MAX_RETRY_AFTER_MS",
      "MAX_TEXT_BYTES",
      "MAX_U64",
      "MESSAGE_TYPES",
      "REFUSAL_CODES",
      "RELEASE_ACK_STATUSES",
      "REMOTE_ERROR_CODES",
      "RESULT_ACK_STATUSES",
      "RESULT_PROTOCOL",
      "RetryExhaustedError",
      "SIGNATURE_LENGTH",
      "WIRE_VERSION",
      "WireAbortedError",
      "WireFormatError",
      "WireRemoteError",
      "WireSignatureError",
      "WireStreamError",
      "WireTimeoutError",
      "WireTooLargeError",
      "WireTruncatedError",
      "WireVersionError",
      "accessDomainSeparator",
      "accessRequestDigest",
      "accessRequestReplayKey",
      "accessRequestSigningBytes",
      "accessRequestTypedData",
      "addressOfPrivateKey",
      "addressToBytes",
      "createRateLimiter",
      "createReplayCache",
      "decodeAccessRequest",
      "decodeAccessResponse",
      "decodeErrorReply",
      "decodeFrame",
      "decodeKeyRelease",
      "decodeMessage",
      "decodeReleaseAck",
      "decodeReply",
      "decodeResultAck",
      "decodeResultDelivery",
      "encodeAccessRequest",
      "encodeAccessResponse",
      "encodeErrorReply",
      "encodeFrame",
      "encodeKeyRelease",
      "encodeReleaseAck",
      "encodeResultAck",
      "encodeResultDelivery",
      "fastPathProtocol",
      "handle",
      "keyReleaseProtocol",
      "readMessage",
      "recoverAccessRequestSigner",
      "request",
      "requestOn",
      "resultAad",
      "resultProtocol",
      "retryWithBackoff",
      "sendMessage",
      "signAccessRequest",
      "toChecksumAddress",
      "verifyAccessRequestSignature",
    ]
  `)
})

it('every exported error class carries its stable code', () => {
  const cases: [new (m: string) => api.WireFormatError, string][] = [
    [api.WireFormatError, 'WIRE_FORMAT'],
    [api.WireVersionError, 'WIRE_VERSION'],
    [api.WireTooLargeError, 'WIRE_TOO_LARGE'],
    [api.WireTruncatedError, 'WIRE_TRUNCATED'],
    [api.WireTimeoutError, 'WIRE_TIMEOUT'],
    [api.WireAbortedError, 'WIRE_ABORTED'],
    [api.WireStreamError, 'WIRE_STREAM'],
    [api.WireSignatureError, 'WIRE_SIGNATURE'],
    [api.RetryExhaustedError, 'RETRY_EXHAUSTED'],
    [api.HandlerFailedError, 'HANDLER_FAILED'],
  ]
  for (const [Cls, code] of cases) {
    const err = new Cls('x')
    expect(err.code).toBe(code)
    expect(err.name).toBe(Cls.name)
  }
  const remote = new api.WireRemoteError('format', 'bad')
  expect([remote.code, remote.remoteCode, remote.name]).toEqual([
    'WIRE_REMOTE',
    'format',
    'WireRemoteError',
  ])
})
