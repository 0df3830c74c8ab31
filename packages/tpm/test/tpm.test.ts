/**
 * `@digicap/tpm` on its own: TCTI parsing, response-code decoding and mapping (lockout as its
 * own class), retries, the tools runner's mapping, and one real command over each path to a
 * real swtpm.
 */
import { createServer, type Server } from 'node:net'
import { DigicapError } from '@digicap/capsule-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  decodeResponseCode,
  MAX_RETRIES,
  mapToolFailure,
  parseDirectTcti,
  responseCodeError,
  runTpm2Tool,
  sendWithRetry,
  socketTransport,
  TpmBusyError,
  TpmLockoutError,
  transportFor,
} from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

/** TPM2_GetRandom(8), no sessions. */
const GET_RANDOM = Uint8Array.from([0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 8])

function errorResponse(rc: number): Uint8Array {
  const out = Buffer.alloc(10)
  out.writeUInt16BE(0x8001, 0)
  out.writeUInt32BE(10, 2)
  out.writeUInt32BE(rc, 6)
  return new Uint8Array(out)
}

describe('response codes', () => {
  it('decodes format-0 codes: version, vendor and severity bits', () => {
    expect(decodeResponseCode(0x922)).toMatchObject({ format: 0, base: 0x922, warning: true })
    expect(decodeResponseCode(0x101)).toMatchObject({ format: 0, base: 0x101, warning: false })
    expect(decodeResponseCode(0x501)).toMatchObject({ format: 0, vendor: true })
  })

  it('decodes format-1 codes: parameter, handle and session numbers', () => {
    expect(decodeResponseCode(0x1c4)).toMatchObject({
      format: 1,
      base: 0x84,
      subject: 'parameter',
      n: 1,
    })
    expect(decodeResponseCode(0x3c4)).toMatchObject({ base: 0x84, subject: 'parameter', n: 3 })
    expect(decodeResponseCode(0x28b)).toMatchObject({ base: 0x8b, subject: 'handle', n: 2 })
    expect(decodeResponseCode(0x98e)).toMatchObject({ base: 0x8e, subject: 'session', n: 1 })
    expect(decodeResponseCode(0xa8e)).toMatchObject({ subject: 'session', n: 2 })
    expect(decodeResponseCode(0x095).subject).toBeUndefined()
    expect(decodeResponseCode(0x8000a).layer).toBe(8)
  })

  it('maps a lockout to TpmLockoutError, still a TPM_BUSY, with the recovery hint', () => {
    const err = responseCodeError('TPM2_Quote', 0x921)
    expect(err).toBeInstanceOf(TpmLockoutError)
    expect(err).toBeInstanceOf(TpmBusyError)
    expect(err.code).toBe('TPM_BUSY')
    expect(err.details).toMatchObject({ command: 'TPM2_Quote', reason: 'lockout', rc: '0x921' })
    expect(err.message).toMatch(/dictionarylockout --clear-lockout/)
    expect(responseCodeError('TPM2_Quote', 0x902)).not.toBeInstanceOf(TpmLockoutError)
    expect(responseCodeError('TPM2_Quote', 0x902).details.reason).toBe('busy')
  })

  it('maps handle, not-started, layer and other codes to their typed errors', () => {
    expect(responseCodeError('X', 0x18b).code).toBe('TPM_HANDLE')
    expect(responseCodeError('X', 0x910).code).toBe('TPM_HANDLE')
    expect(responseCodeError('X', 0x100).code).toBe('TPM_UNAVAILABLE')
    expect(responseCodeError('X', 0x8000a).details.reason).toBe('layer')
    expect(responseCodeError('X', 0x1c4).code).toBe('TPM_COMMAND')
    expect(responseCodeError('X', 0x1c4, () => new DigicapError('MINE', 'm')).code).toBe('MINE')
  })

  it('maps a tool that reports TPM_RC_LOCKOUT to TpmLockoutError', () => {
    const err = mapToolFailure('tpm2_quote', {
      exitCode: 1,
      stderr:
        'ERROR: Esys_Quote(0x921) - tpm:warn(2.0): authorizations for objects subject to DA protection are not allowed at this time because the TPM is in DA lockout mode\n',
      timedOut: false,
    })
    expect(err).toBeInstanceOf(TpmLockoutError)
  })
})

describe('TCTI strings', () => {
  it('parses swtpm and device TCTIs the way tpm2-tss does', () => {
    expect(parseDirectTcti('swtpm:host=127.0.0.1,port=2400')).toEqual({
      kind: 'socket',
      host: '127.0.0.1',
      port: 2400,
    })
    expect(parseDirectTcti('swtpm')).toEqual({ kind: 'socket', host: 'localhost', port: 2321 })
    expect(parseDirectTcti('swtpm:port=2500')).toMatchObject({ port: 2500 })
    expect(parseDirectTcti('swtpm:path=/run/swtpm.sock')).toEqual({
      kind: 'socket',
      path: '/run/swtpm.sock',
    })
    expect(parseDirectTcti('device:/dev/tpmrm0')).toEqual({ kind: 'device', path: '/dev/tpmrm0' })
    expect(parseDirectTcti('device:')).toEqual({ kind: 'device', path: '/dev/tpm0' })
    for (const tcti of [
      'mssim:host=localhost,port=2321',
      'tabrmd:',
      'swtpm:port=0',
      'swtpm:port=99999',
      'swtpm:foo=1',
      'device:tpm0',
    ])
      expect(parseDirectTcti(tcti)).toBeUndefined()
  })
})

describe('retries', () => {
  let server: Server
  let answers: Uint8Array[] = []
  let seen = 0
  beforeAll(async () => {
    server = createServer((socket) => {
      socket.once('data', () => {
        seen++
        socket.end(answers.shift() ?? errorResponse(0x101))
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))
  const transport = () => {
    const address = server.address()
    const port = typeof address === 'object' && address !== null ? address.port : 0
    return socketTransport({ host: '127.0.0.1', port }, 2000)
  }

  it('retries RETRY, YIELDED and TESTING, then returns the last answer as is', async () => {
    seen = 0
    answers = [errorResponse(0x922), errorResponse(0x908), errorResponse(0x90a), errorResponse(0)]
    expect(Buffer.from(await sendWithRetry(transport(), GET_RANDOM))).toEqual(
      Buffer.from(errorResponse(0)),
    )
    expect(seen).toBe(4)
    seen = 0
    answers = Array.from({ length: MAX_RETRIES + 3 }, () => errorResponse(0x922))
    expect(Buffer.from(await sendWithRetry(transport(), GET_RANDOM))).toEqual(
      Buffer.from(errorResponse(0x922)),
    )
    expect(seen).toBe(MAX_RETRIES + 1)
    seen = 0
    answers = [errorResponse(0x921)]
    await sendWithRetry(transport(), GET_RANDOM)
    expect(seen).toBe(1) // a lockout is not retried
  })
})

describe('a real swtpm', () => {
  let tpm: Swtpm
  beforeAll(async () => {
    tpm = await startSwtpm()
  })
  afterAll(async () => {
    await tpm?.stop()
  })

  it('answers a raw command over the direct socket transport', async () => {
    const transport = transportFor(tpm.tcti, 5000)
    expect(transport?.kind).toBe('socket')
    const response = await sendWithRetry(transport!, GET_RANDOM)
    expect(response.length).toBe(10 + 2 + 8)
    expect(new DataView(response.buffer).getUint32(6)).toBe(0)
  })

  it('runs tpm2-tools against it and maps a failure to a typed error', async () => {
    const out = await runTpm2Tool({ tcti: tpm.tcti, timeoutMs: 5000 }, 'tpm2_getrandom', ['4'])
    expect(out.stdout.length).toBe(4)
    const err = await runTpm2Tool({ tcti: tpm.tcti, timeoutMs: 5000 }, 'tpm2_readpublic', [
      '-c',
      '0x81000999',
    ]).catch((e: unknown) => e)
    expect((err as DigicapError).code).toBe('TPM_HANDLE')
  })
})
