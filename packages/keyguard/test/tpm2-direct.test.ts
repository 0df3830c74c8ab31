import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import { deviceTransport, socketTransport, transportFor } from '@digicap/tpm'
import { execa } from 'execa'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tpm2Sealer } from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'
import { MAX_RETRIES, rsaDecryptDirect } from '../src/tpm2/direct.ts'
import { rsaDecryptError } from '../src/tpm2/rc.ts'
import { decodeRsaDecryptResponse, encodeRsaDecrypt } from '../src/tpm2/rsa-decrypt.ts'
import { expectCode } from './compliance.ts'

const HANDLE = 0x81000010

/** A well-formed success response carrying `message`. */
function okResponse(message: Uint8Array): Buffer {
  const size = 10 + 4 + 2 + message.length + 5
  const out = Buffer.alloc(size)
  out.writeUInt16BE(0x8002, 0)
  out.writeUInt32BE(size, 2)
  out.writeUInt32BE(0, 6)
  out.writeUInt32BE(2 + message.length, 10)
  out.writeUInt16BE(message.length, 14)
  out.set(message, 16)
  out.writeUInt8(0x01, 16 + message.length + 2)
  return out
}

function errorResponse(rc: number, tag = 0x8001): Buffer {
  const out = Buffer.alloc(10)
  out.writeUInt16BE(tag, 0)
  out.writeUInt32BE(10, 2)
  out.writeUInt32BE(rc, 6)
  return out
}

describe('TPM2_RSA_Decrypt against a real swtpm', () => {
  let tpm: Swtpm
  const tools = (tool: string, args: string[], input?: Uint8Array) =>
    execa(tool, args, {
      env: { TPM2TOOLS_TCTI: tpm.tcti },
      encoding: 'buffer',
      // Binary output: execa would drop a last 0x0a byte (a plaintext ending in '\n', 3 runs in 256).
      stripFinalNewline: false,
      ...(input ? { input } : {}),
    })

  beforeAll(async () => {
    tpm = await startSwtpm()
    await tpm2Sealer({ tcti: tpm.tcti, handle: HANDLE, createIfMissing: true }).publicKey()
  })
  afterAll(async () => {
    await tpm?.stop()
  })

  it('returns exactly what tpm2_rsadecrypt -s oaep returns for the same ciphertext', async () => {
    const sealer = tpm2Sealer({ tcti: tpm.tcti, handle: HANDLE })
    const transport = transportFor(tpm.tcti, 5000)!
    for (const length of [1, 32, 190]) {
      const key = randomBytes(length)
      const { ciphertext } = await sealer.wrap(key)
      const cli = await tools('tpm2_rsadecrypt', ['-c', '0x81000010', '-s', 'oaep'], ciphertext)
      const direct = await rsaDecryptDirect(transport, HANDLE, ciphertext)
      // Hex, so a failure shows both answers.
      expect(Buffer.from(cli.stdout).toString('hex'), `length ${length}`).toBe(
        Buffer.from(direct).toString('hex'),
      )
      expect(Buffer.from(direct).toString('hex')).toBe(key.toString('hex'))
    }
  })

  it('gives the same plaintext through the direct and the tools sealer, interleaved', async () => {
    const direct = tpm2Sealer({ tcti: tpm.tcti, handle: HANDLE, unwrapVia: 'direct' })
    const viaTools = tpm2Sealer({
      tcti: tpm.tcti,
      handle: HANDLE,
      unwrapVia: 'tools',
      allowUnencryptedTransport: true,
    })
    expect((await direct.describe()).details.unwrapVia).toBe('direct')
    expect((await viaTools.describe()).details.unwrapVia).toBe('tools')
    const keys = Array.from({ length: 6 }, () => randomBytes(32))
    const wrapped = await Promise.all(keys.map((k) => direct.wrap(k)))
    // Both sealers hit the one swtpm at once: swtpm serves one connection at a time.
    const results = await Promise.all(
      wrapped.flatMap((w) => [direct.unwrap(w), viaTools.unwrap(w)]),
    )
    results.forEach((plain, i) => {
      expect(Buffer.from(plain).equals(keys[Math.floor(i / 2)]!)).toBe(true)
    })
  })

  it('refuses to unwrap over tpm2-tools (no encrypted session) unless allowed, before any TPM command', async () => {
    const refusing = tpm2Sealer({ tcti: tpm.tcti, handle: HANDLE, unwrapVia: 'tools' })
    const key = randomBytes(32)
    const wrapped = await refusing.wrap(key)
    expect((await refusing.describe()).details.session).toMatch(/unwrap refused/)
    const err = await expectCode(refusing.unwrap(wrapped), 'SEALER_REFUSED')
    expect(err.details).toMatchObject({ reason: 'unencrypted-transport', unwrapVia: 'tools' })
    // mssim: and tabrmd: have no direct transport; nothing answers on these: a refusal other
    // than SEALER_REFUSED would mean the sealer tried to reach a TPM first.
    for (const tcti of ['mssim:host=127.0.0.1,port=1', 'tabrmd:bus_name=com.example.none']) {
      const e = await expectCode(tpm2Sealer({ tcti }).unwrap(wrapped), 'SEALER_REFUSED')
      expect(e.details).toMatchObject({ reason: 'unencrypted-transport', tcti })
    }
  })

  it('serves 20 concurrent unwraps correctly', async () => {
    const sealer = tpm2Sealer({ tcti: tpm.tcti, handle: HANDLE })
    const keys = Array.from({ length: 20 }, () => randomBytes(32))
    const wrapped = await Promise.all(keys.map((k) => sealer.wrap(k)))
    const plain = await Promise.all(wrapped.map((w) => sealer.unwrap(w)))
    expect(plain.map((p) => Buffer.from(p).toString('hex'))).toEqual(
      keys.map((k) => k.toString('hex')),
    )
  })

  it('fails with UNWRAP for a ciphertext that does not decrypt', async () => {
    const sealer = tpm2Sealer({ tcti: tpm.tcti, handle: HANDLE })
    const wrapped = await sealer.wrap(randomBytes(32))
    const err = await expectCode(
      sealer.unwrap({ ...wrapped, ciphertext: randomBytes(256) }),
      'UNWRAP',
    )
    expect(err.details).toMatchObject({ command: 'TPM2_RSA_Decrypt' })
    const transport = transportFor(tpm.tcti, 5000)!
    await expectCode(rsaDecryptDirect(transport, HANDLE, randomBytes(100)), 'UNWRAP')
  })

  it('fails with TPM_HANDLE for an empty handle, also when the key vanishes behind a sealer', async () => {
    const transport = transportFor(tpm.tcti, 5000)!
    const err = await expectCode(
      rsaDecryptDirect(transport, 0x81000077, randomBytes(256)),
      'TPM_HANDLE',
    )
    expect(err.details).toMatchObject({ rc: '0x18b', handle: 1 })
    await expectCode(rsaDecryptDirect(transport, 0x80000001, randomBytes(256)), 'TPM_HANDLE')

    const sealer = tpm2Sealer({ tcti: tpm.tcti, handle: 0x81000078, createIfMissing: true })
    const wrapped = await sealer.wrap(randomBytes(32))
    await tools('tpm2_evictcontrol', ['-C', 'o', '-c', '0x81000078', '-Q'])
    await expectCode(sealer.unwrap(wrapped), 'TPM_HANDLE')
  })

  it('flushes leftover transient objects when the TPM is full and unwraps anyway', async () => {
    const sealer = tpm2Sealer({ tcti: tpm.tcti, handle: HANDLE })
    const key = randomBytes(32)
    const wrapped = await sealer.wrap(key)
    const dir = await mkdtemp(join(tmpdir(), 'kg-direct-full-'))
    try {
      let full = false
      for (let i = 0; i < 8 && !full; i++) {
        const r = await execa(
          'tpm2_createprimary',
          ['-C', 'o', '-G', 'ecc256', '-c', join(dir, `p${i}.ctx`), '-Q'],
          { env: { TPM2TOOLS_TCTI: tpm.tcti }, reject: false },
        )
        full = r.failed
      }
      expect(full).toBe(true)
      expect(Buffer.from(await sealer.unwrap(wrapped)).equals(key)).toBe(true)
    } finally {
      await execa('tpm2_flushcontext', ['-t'], { env: { TPM2TOOLS_TCTI: tpm.tcti } })
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('fails with TPM_UNAVAILABLE when swtpm is killed mid-run', async () => {
    const own = await startSwtpm()
    try {
      const sealer = tpm2Sealer({ tcti: own.tcti, createIfMissing: true, timeoutMs: 3000 })
      const wrapped = await sealer.wrap(randomBytes(32))
      await sealer.unwrap(wrapped)
      const running = Array.from({ length: 30 }, () =>
        sealer.unwrap(wrapped).then(
          () => 'ok',
          (e: unknown) => e,
        ),
      )
      process.kill(own.pid, 'SIGKILL')
      const outcomes = await Promise.all(running)
      const failures = outcomes.filter((o) => o !== 'ok')
      expect(failures.length).toBeGreaterThan(0)
      for (const f of failures) {
        expect(f).toBeInstanceOf(DigicapError)
        expect((f as DigicapError).code).toBe('TPM_UNAVAILABLE')
      }
      await expectCode(sealer.unwrap(wrapped), 'TPM_UNAVAILABLE')
    } finally {
      await own.stop()
    }
  })
})

/** A fake TPM on loopback for fault injection: answers each command with `reply`. */
async function fakeTpm(reply: (command: Buffer, socket: Socket, index: number) => void): Promise<{
  transport: ReturnType<typeof socketTransport>
  commands: Buffer[]
  close(): Promise<void>
}> {
  const commands: Buffer[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    let buffered = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      if (buffered.length >= 6 && buffered.length === buffered.readUInt32BE(2)) {
        commands.push(buffered)
        reply(buffered, socket, commands.length - 1)
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as { port: number }).port
  return {
    transport: socketTransport({ host: '127.0.0.1', port }, 300),
    commands,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

describe('direct path fault injection (fake TPM on loopback)', () => {
  const ciphertext = new Uint8Array(256).fill(7)
  const answer = async (reply: (command: Buffer, socket: Socket, index: number) => void) => {
    const fake = await fakeTpm(reply)
    try {
      return {
        outcome: await rsaDecryptDirect(fake.transport, HANDLE, ciphertext).then(
          (v) => ({ value: v }),
          (e: unknown) => ({ error: e as DigicapError }),
        ),
        commands: fake.commands,
      }
    } finally {
      await fake.close()
    }
  }
  const failsWith = async (
    reply: (command: Buffer, socket: Socket, index: number) => void,
    code: string,
    details: Record<string, unknown> = {},
  ) => {
    const { outcome } = await answer(reply)
    expect('error' in outcome && outcome.error).toBeInstanceOf(DigicapError)
    const err = (outcome as { error: DigicapError }).error
    expect(err.code).toBe(code)
    expect(err.details).toMatchObject(details)
    return err
  }

  it('sends the exact TPM2_RSA_Decrypt bytes and returns the message', async () => {
    const message = randomBytes(32)
    const { outcome, commands } = await answer((_, s) => s.end(okResponse(message)))
    expect('value' in outcome && Buffer.from(outcome.value).equals(message)).toBe(true)
    expect(commands).toHaveLength(1)
    const expected = Buffer.concat([
      Buffer.from('8002' + '00000123' + '00000159' + '81000010', 'hex'),
      Buffer.from('00000009' + '40000009' + '0000' + '01' + '0000', 'hex'),
      Buffer.from('0100', 'hex'),
      Buffer.from(ciphertext),
      Buffer.from('0017' + '000b' + '0000', 'hex'),
    ])
    expect(commands[0]!.toString('hex')).toBe(expected.toString('hex'))
  })

  it('reads a response split over many TCP segments', async () => {
    const message = randomBytes(48)
    const { outcome } = await answer((_, s) => {
      const bytes = okResponse(message)
      let i = 0
      const next = () => {
        if (i >= bytes.length) return s.end()
        s.write(bytes.subarray(i, i + 3))
        i += 3
        setImmediate(next)
      }
      next()
    })
    expect('value' in outcome && Buffer.from(outcome.value).equals(message)).toBe(true)
  })

  it('maps a truncated response to TPM_UNAVAILABLE (truncated)', async () => {
    await failsWith(
      (_, s) => s.end(okResponse(randomBytes(32)).subarray(0, 20)),
      'TPM_UNAVAILABLE',
      {
        reason: 'truncated',
      },
    )
    await failsWith((_, s) => s.end(Buffer.from([0x80])), 'TPM_UNAVAILABLE', {
      reason: 'truncated',
    })
    await failsWith((_, s) => s.end(), 'TPM_UNAVAILABLE')
  })

  it('maps oversized and undersized size fields, wrong tags and garbage to TPM_COMMAND', async () => {
    const big = okResponse(randomBytes(32))
    big.writeUInt32BE(0x10000, 2)
    await failsWith((_, s) => s.end(big), 'TPM_COMMAND', {
      reason: 'malformed-response',
      why: 'size',
    })
    const small = okResponse(randomBytes(32))
    small.writeUInt32BE(9, 2)
    await failsWith((_, s) => s.end(small), 'TPM_COMMAND', { why: 'size' })
    const tag = okResponse(randomBytes(32))
    tag.writeUInt16BE(0x00c4, 0)
    await failsWith((_, s) => s.end(tag), 'TPM_COMMAND', { why: 'tag' })
    await failsWith((_, s) => s.end(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')), 'TPM_COMMAND')
    // A success code under the no-sessions tag, an error code under the sessions tag.
    const noSessions = okResponse(randomBytes(32))
    noSessions.writeUInt16BE(0x8001, 0)
    await failsWith((_, s) => s.end(noSessions), 'TPM_COMMAND', { why: 'tag' })
    await failsWith((_, s) => s.end(errorResponse(0x18b, 0x8002)), 'TPM_COMMAND', {
      why: 'error-layout',
    })
    // More bytes than the size field says.
    await failsWith(
      (_, s) => s.end(Buffer.concat([okResponse(randomBytes(32)), Buffer.from([0])])),
      'TPM_COMMAND',
      { why: 'trailing-bytes' },
    )
  })

  it('maps no answer to TPM_UNAVAILABLE (timeout) and a refused connection to TPM_UNAVAILABLE (tcti)', async () => {
    await failsWith(() => undefined, 'TPM_UNAVAILABLE', { reason: 'timeout' })
    const fake = await fakeTpm(() => undefined)
    const { port } = { port: Number(fake.transport.target.split(':')[1]) }
    await fake.close()
    const transport = socketTransport({ host: '127.0.0.1', port }, 1000)
    const err = await expectCode(rsaDecryptDirect(transport, HANDLE, ciphertext), 'TPM_UNAVAILABLE')
    expect(err.details).toMatchObject({ reason: 'tcti', errno: 'ECONNREFUSED' })
  })

  it('maps TPM error codes to the exact typed errors', async () => {
    const cases: [number, string, Record<string, unknown>][] = [
      [0x921, 'TPM_BUSY', { reason: 'lockout' }],
      [0x902, 'TPM_BUSY', { reason: 'busy' }],
      [0x904, 'TPM_BUSY', { reason: 'busy' }],
      [0x18b, 'TPM_HANDLE', { handle: 1 }],
      [0x910, 'TPM_HANDLE', {}],
      [0x19c, 'TPM_HANDLE', { handle: 1 }],
      [0x1c4, 'UNWRAP', { parameter: 1 }],
      [0x2d5, 'UNWRAP', { parameter: 2 }],
      [0x095, 'UNWRAP', {}],
      [0x101, 'UNWRAP', {}],
      [0x100, 'TPM_UNAVAILABLE', { reason: 'not-started' }],
      [0x143, 'TPM_COMMAND', { rc: '0x143' }],
      [0x98e, 'TPM_COMMAND', { session: 1 }],
      [0xa000a, 'TPM_COMMAND', { reason: 'layer' }],
    ]
    for (const [rc, code, details] of cases) {
      await failsWith((_, s) => s.end(errorResponse(rc)), code, details)
    }
  })

  it('retries RETRY, YIELDED and TESTING, then reports TPM_BUSY', async () => {
    for (const rc of [0x922, 0x908, 0x90a]) {
      const message = randomBytes(32)
      const { outcome, commands } = await answer((_, s, i) =>
        s.end(i < 2 ? errorResponse(rc) : okResponse(message)),
      )
      expect('value' in outcome && Buffer.from(outcome.value).equals(message)).toBe(true)
      expect(commands).toHaveLength(3)
    }
    const { outcome, commands } = await answer((_, s) => s.end(errorResponse(0x922)))
    expect('error' in outcome && outcome.error.code).toBe('TPM_BUSY')
    expect(commands).toHaveLength(MAX_RETRIES + 1)
  })

  it('keeps key material out of error messages and details', async () => {
    const message = Buffer.alloc(32, 0xab)
    const bad = okResponse(message)
    bad.writeUInt32BE(99, 10)
    const err = await failsWith((_, s) => s.end(bad), 'TPM_COMMAND', { why: 'parameter-size' })
    expect(JSON.stringify({ m: err.message, d: err.details })).not.toMatch(/abab|171,171/)
  })
})

describe('TPM response parser', () => {
  const typed = (run: () => unknown) => {
    try {
      run()
    } catch (err) {
      expect(err).toBeInstanceOf(DigicapError)
      expect(['TPM_COMMAND', 'TPM_BUSY', 'TPM_HANDLE', 'TPM_UNAVAILABLE', 'UNWRAP']).toContain(
        (err as DigicapError).code,
      )
      return err as DigicapError
    }
    return undefined
  }

  it('parses a well-formed response and rejects every truncation of it', () => {
    const message = randomBytes(32)
    const response = okResponse(message)
    expect(Buffer.from(decodeRsaDecryptResponse(response)).equals(message)).toBe(true)
    for (let cut = 0; cut < response.length; cut++) {
      expect(typed(() => decodeRsaDecryptResponse(response.subarray(0, cut)))?.code).toBe(
        'TPM_COMMAND',
      )
    }
  })

  it('rejects non-empty session nonce or hmac and empty or huge messages', () => {
    const withNonce = okResponse(randomBytes(32))
    withNonce.writeUInt16BE(1, 16 + 32)
    expect(typed(() => decodeRsaDecryptResponse(withNonce))?.details).toMatchObject({
      why: 'session-area',
    })
    const empty = okResponse(new Uint8Array(0))
    expect(typed(() => decodeRsaDecryptResponse(empty))?.details).toMatchObject({
      why: 'message-size',
    })
  })

  it('never throws anything but a typed error on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        typed(() => decodeRsaDecryptResponse(bytes))
      }),
      { numRuns: 2000 },
    )
  })

  it('never throws anything but a typed error on mutated valid responses (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 256 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.integer({ min: -3, max: 3 }),
        (message, edits, resize) => {
          const bytes = okResponse(message)
          for (const [at, value] of edits) bytes[at % bytes.length] = value
          const sized =
            resize >= 0
              ? Buffer.concat([bytes, Buffer.alloc(resize)])
              : bytes.subarray(0, bytes.length + resize)
          const err = typed(() => decodeRsaDecryptResponse(sized))
          if (err === undefined) {
            // Whatever parsed is exactly the layout: size field = length, one password session.
            expect(sized.readUInt32BE(2)).toBe(sized.length)
          }
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('refuses to encode impossible ciphertext lengths', () => {
    expect(() => encodeRsaDecrypt(HANDLE, new Uint8Array(0))).toThrow(DigicapError)
    expect(() => encodeRsaDecrypt(HANDLE, new Uint8Array(513))).toThrow(DigicapError)
  })
})

describe('TPM response codes', () => {
  it('puts codes and numbers in details, no bytes', () => {
    expect(rsaDecryptError(0x2c4).details).toEqual({
      command: 'TPM2_RSA_Decrypt',
      rc: '0x2c4',
      base: '0x084',
      parameter: 2,
    })
  })
})

describe('TCTI strings and the transports they pick', () => {
  it('falls back to tpm2-tools for other TCTIs and refuses to force direct there', async () => {
    const d = await tpm2Sealer({ tcti: 'mssim:host=127.0.0.1,port=1' })
      .describe()
      .catch((e: DigicapError) => e)
    expect((d as DigicapError).code).toBe('TPM_UNAVAILABLE')
    let caught: unknown
    try {
      tpm2Sealer({ tcti: 'mssim:host=127.0.0.1,port=1', unwrapVia: 'direct' })
    } catch (err) {
      caught = err
    }
    expect((caught as DigicapError).code).toBe('INVALID_ARGUMENT')
    expect(() =>
      tpm2Sealer({ tcti: 'swtpm:port=1', unwrapVia: 'fast' as unknown as 'direct' }),
    ).toThrow(DigicapError)
  })

  it('speaks write-then-read to a device node (a file stands in for the character device)', async () => {
    // Fault injection only: a regular file opened read-write behaves like the device for one
    // exchange when it holds `command length` filler bytes followed by the canned response.
    const dir = await mkdtemp(join(tmpdir(), 'kg-fake-dev-'))
    try {
      const ciphertext = new Uint8Array(256).fill(3)
      const commandLength = encodeRsaDecrypt(HANDLE, ciphertext).length
      const device = async (response: Uint8Array) => {
        const path = join(dir, `tpm${randomBytes(4).toString('hex')}`)
        await writeFile(path, Buffer.concat([Buffer.alloc(commandLength), response]))
        return rsaDecryptDirect(deviceTransport(path, 2000), HANDLE, ciphertext)
      }
      const message = randomBytes(32)
      expect(Buffer.from(await device(okResponse(message))).equals(message)).toBe(true)
      const truncated = await expectCode(
        device(okResponse(message).subarray(0, 8)),
        'TPM_UNAVAILABLE',
      )
      expect(truncated.details.reason).toBe('truncated')
      const short = await expectCode(device(okResponse(message).subarray(0, 30)), 'TPM_COMMAND')
      expect(short.details).toMatchObject({ reason: 'malformed-response', why: 'length' })
      await expectCode(device(errorResponse(0x18b)), 'TPM_HANDLE')
      await expectCode(device(Buffer.from('garbage garbage garbage')), 'TPM_COMMAND')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('maps a missing TPM device to TPM_UNAVAILABLE', async () => {
    const err = await expectCode(
      rsaDecryptDirect(deviceTransport('/dev/nonexistent-tpm', 1000), HANDLE, new Uint8Array(256)),
      'TPM_UNAVAILABLE',
    )
    expect(err.details).toMatchObject({ reason: 'tcti', errno: 'ENOENT' })
  })
})
