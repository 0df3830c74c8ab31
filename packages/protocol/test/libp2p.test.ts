/**
 * The three protocols between real js-libp2p 3 nodes on loopback (TCP + noise + yamux +
 * identify): round trips, and malformed, truncated, oversized, wrong-version and replayed
 * input over real streams — each gets a typed error and the node keeps serving.
 */

import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  type DigicapError,
  decodeHpkeSealed,
  encodeHpkeSealed,
  generateX25519KeyPair,
  hpkeOpen,
  hpkeSeal,
} from '@digicap/capsule-core'
import type { Libp2p, Stream } from '@libp2p/interface'
import { keccak_256 as keccakJob } from '@noble/hashes/sha3.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RESULT_VECTOR_DIR } from '../scripts/generate-result-vectors.ts'
import { parseVector, VECTOR_DIR, VECTOR_PRIVATE_KEY } from '../scripts/generate-vectors.ts'
import {
  type AccessDomain,
  type AccessRequest,
  type AccessResponse,
  accessRequestReplayKey,
  addressOfPrivateKey,
  createRateLimiter,
  createReplayCache,
  decodeErrorReply,
  decodeReply,
  FAST_PATH_PROTOCOL,
  fastPathProtocol,
  handle,
  KEY_RELEASE_PROTOCOL,
  type KeyRelease,
  keyReleaseProtocol,
  RESULT_PROTOCOL,
  type ReleaseAck,
  type ResultAck,
  readMessage,
  recoverResultSigner,
  request,
  requestOn,
  resultAad,
  resultHashOf,
  resultProtocol,
  retryWithBackoff,
  signAccessRequest,
  signResult,
  toChecksumAddress,
  verifyAccessRequestSignature,
  type WireProtocol,
  WireRemoteError,
} from '../src/index.ts'
import { toWireError } from '../src/stream.ts'
import { createPair } from './helpers/nodes.ts'

const EMPTY_JOB_HASH = keccakJob(new Uint8Array(0))

const domain: AccessDomain = {
  chainId: 31337n,
  verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
}
const executorKey = Uint8Array.from({ length: 32 }, (_, i) => i + 1)
const executorAddress = addressOfPrivateKey(executorKey)
const rand = (n: number) => new Uint8Array(randomBytes(n))
const nowSeconds = () => BigInt(Math.floor(Date.now() / 1000))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** State of the "executor" (node b for key release) and "keyguard" (node b for fast path). */
const runs = new Map<string, { privateKey: Uint8Array; received?: Uint8Array }>()
const capsuleKeys = new Map<string, Uint8Array>()
const errors: DigicapError[] = []

let a: Libp2p
let b: Libp2p
let stop: () => Promise<void>

async function executorHandler(release: KeyRelease): Promise<ReleaseAck> {
  const run = runs.get(hex(release.grantId))
  if (run === undefined) return { grantId: release.grantId, status: 'unknown-grant' }
  try {
    run.received = await hpkeOpen(run.privateKey, decodeHpkeSealed(release.hpke), release.grantId)
  } catch {
    return { grantId: release.grantId, status: 'open-failed' }
  }
  return { grantId: release.grantId, status: 'ok' }
}

function fastPathKeyguard() {
  const limiter = createRateLimiter({ capacity: 30, refillPerSecond: 0.001 })()
  const replays = createReplayCache({ maxEntries: 1000 })()
  return async (
    req: AccessRequest,
    ctx: { peer: { toString(): string } },
  ): Promise<AccessResponse> => {
    const rate = limiter.take(ctx.peer.toString())
    if (!rate.allowed)
      return {
        status: 'refused',
        reasonCode: 'rate-limited',
        retryAfterMs: Math.min(rate.retryAfterMs, 3_600_000),
      }
    if (req.expiry <= nowSeconds()) return { status: 'refused', reasonCode: 'expired' }
    if (!verifyAccessRequestSignature(req, domain))
      return { status: 'refused', reasonCode: 'bad-signature' }
    const verdict = replays.check(accessRequestReplayKey(req), Number(req.expiry) * 1000)
    if (verdict === 'replayed') return { status: 'refused', reasonCode: 'replayed' }
    if (verdict === 'full') return { status: 'refused', reasonCode: 'busy', retryAfterMs: 1000 }
    if (verdict !== 'fresh') return { status: 'refused', reasonCode: 'expired' }
    const dataKey = capsuleKeys.get(hex(req.capsuleId))
    if (dataKey === undefined) return { status: 'refused', reasonCode: 'unknown-capsule' }
    if (toChecksumAddress(req.executor) !== toChecksumAddress(executorAddress)) {
      return { status: 'refused', reasonCode: 'policy-denied', reason: 'executor not allow-listed' }
    }
    const grantId = rand(32)
    const sealed = await hpkeSeal(req.ephemeralKey, dataKey, grantId)
    return {
      status: 'granted',
      grantId,
      keyRelease: {
        grantId,
        capsuleId: req.capsuleId,
        hpke: encodeHpkeSealed(sealed),
        fastPath: true,
      },
    }
  }
}

const slowProtocol: WireProtocol<KeyRelease, ReleaseAck> = {
  ...keyReleaseProtocol,
  id: '/digicap-test/slow/1.0.0',
}
const throwingProtocol: WireProtocol<KeyRelease, ReleaseAck> = {
  ...keyReleaseProtocol,
  id: '/digicap-test/throws/1.0.0',
}
const impatientProtocol: WireProtocol<KeyRelease, ReleaseAck> = {
  ...keyReleaseProtocol,
  id: '/digicap-test/impatient/1.0.0',
}

beforeAll(async () => {
  ;({ a, b, stop } = await createPair())
  const onError = (e: DigicapError) => {
    errors.push(e)
  }
  await handle(b, keyReleaseProtocol, executorHandler, { onError })
  await handle(b, fastPathProtocol, fastPathKeyguard(), { onError })
  await handle(
    b,
    resultProtocol,
    async (delivery): Promise<ResultAck> =>
      delivery.resultCid === undefined
        ? { runId: delivery.runId, status: 'ok' }
        : {
            runId: delivery.runId,
            status: 'refused',
            reasonCode: 'fetch-failed',
            retryAfterMs: 50,
          },
    { onError },
  )
  await handle(b, slowProtocol, async (r, { signal }): Promise<ReleaseAck> => {
    await new Promise((resolve) => setTimeout(resolve, 2_000).unref())
    signal.throwIfAborted()
    return { grantId: r.grantId, status: 'ok' }
  })
  await handle(
    b,
    throwingProtocol,
    () => {
      throw new Error('secret-bearing internal failure')
    },
    { onError },
  )
  await handle(b, impatientProtocol, executorHandler, { timeout: 300, onError })
})

afterAll(async () => {
  await stop()
})

function newRun(): { grantId: Uint8Array; publicKey: Uint8Array } {
  const { publicKey, privateKey } = generateX25519KeyPair()
  const grantId = rand(32)
  runs.set(hex(grantId), { privateKey })
  return { grantId, publicKey }
}

async function sealedRelease(
  grantId: Uint8Array,
  publicKey: Uint8Array,
  dataKey: Uint8Array,
): Promise<KeyRelease> {
  const sealed = await hpkeSeal(publicKey, dataKey, grantId)
  return { grantId, capsuleId: rand(32), hpke: encodeHpkeSealed(sealed), fastPath: false }
}

/** Opens a raw stream, writes `bytes`, closes the write side, returns what came back. */
async function raw(protocol: string, bytes: Uint8Array, closeWrite = true): Promise<unknown> {
  const stream: Stream = await a.dialProtocol(b.peerId, protocol)
  try {
    stream.send(bytes)
    if (closeWrite) await stream.close()
    return decodeReply(
      keyReleaseProtocol as WireProtocol<unknown, unknown>,
      await readMessage(stream, { signal: AbortSignal.timeout(5000) }),
    )
  } catch (err) {
    return toWireError(err)
  } finally {
    if (stream.status === 'open') stream.abort(new Error('test done'))
  }
}

async function stillServes(): Promise<void> {
  const { grantId, publicKey } = newRun()
  const ack = await request(
    a,
    b.peerId,
    keyReleaseProtocol,
    await sealedRelease(grantId, publicKey, rand(32)),
  )
  expect(ack.status).toBe('ok')
}

describe('key release over libp2p', () => {
  it('delivers a real HPKE-sealed data key and gets an ok ack', async () => {
    const { grantId, publicKey } = newRun()
    const dataKey = rand(32)
    const ack = await request(
      a,
      b.peerId,
      keyReleaseProtocol,
      await sealedRelease(grantId, publicKey, dataKey),
      {
        timeout: 5000,
      },
    )
    expect(ack).toEqual({ grantId, status: 'ok' })
    expect(runs.get(hex(grantId))?.received).toEqual(dataKey)
  })

  it('answers unknown-grant and open-failed as typed acks', async () => {
    const stranger = generateX25519KeyPair()
    const unknown = await request(
      a,
      b.peerId,
      keyReleaseProtocol,
      await sealedRelease(rand(32), stranger.publicKey, rand(32)),
    )
    expect(unknown.status).toBe('unknown-grant')
    const { grantId } = newRun()
    // sealed to someone else's key: the executor cannot open it
    const wrongKey = await request(
      a,
      b.peerId,
      keyReleaseProtocol,
      await sealedRelease(grantId, stranger.publicKey, rand(32)),
    )
    expect(wrongKey).toEqual({ grantId, status: 'open-failed' })
  })

  it('works on an existing connection (requestOn) and under concurrency', async () => {
    const [connection] = a.getConnections(b.peerId)
    const acks = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const { grantId, publicKey } = newRun()
        return requestOn(
          connection!,
          keyReleaseProtocol,
          await sealedRelease(grantId, publicKey, rand(32)),
        )
      }),
    )
    expect(acks.every((x) => x.status === 'ok')).toBe(true)
  })

  it('retryWithBackoff retries a failing release until it is acknowledged', async () => {
    const { grantId, publicKey } = newRun()
    const release = await sealedRelease(grantId, publicKey, rand(32))
    let attempts = 0
    const ack = await retryWithBackoff(
      async ({ remainingMs }) => {
        attempts++
        // the first two attempts go to a protocol the executor does not speak
        const protocol =
          attempts < 3
            ? { ...keyReleaseProtocol, id: '/digicap/key-release/9.9.9' }
            : keyReleaseProtocol
        return request(a, b.peerId, protocol, release, { timeout: Math.min(remainingMs, 2000) })
      },
      { until: Date.now() + 10_000, base: 10, max: 50 },
    )
    expect(ack.status).toBe('ok')
    expect(attempts).toBe(3)
  })
})

describe('fast path over libp2p', () => {
  const capsuleId = rand(32)
  const dataKey = rand(32)
  capsuleKeys.set(hex(capsuleId), dataKey)

  function signed(
    over: Partial<AccessRequest> = {},
    ephemeralKey = generateX25519KeyPair().publicKey,
  ): AccessRequest {
    return signAccessRequest(
      {
        capsuleId,
        executor: executorAddress,
        ephemeralKey,
        measurement: rand(32),
        nonce: rand(32),
        expiry: nowSeconds() + 60n,
        jobParamsHash: EMPTY_JOB_HASH,
        fee: 0n,
        jobParams: new Uint8Array(0),
        ...over,
      },
      domain,
      executorKey,
    )
  }

  it('grants a signed request and returns the key inline, sealed to the ephemeral key', async () => {
    const ephemeral = generateX25519KeyPair()
    const res = await request(a, b.peerId, fastPathProtocol, signed({}, ephemeral.publicKey))
    expect(res.status).toBe('granted')
    if (res.status !== 'granted' || res.keyRelease === undefined)
      throw new Error('expected an inline key')
    const key = await hpkeOpen(
      ephemeral.privateKey,
      decodeHpkeSealed(res.keyRelease.hpke),
      res.grantId,
    )
    expect(key).toEqual(dataKey)
  })

  it('refuses a replayed request with reasonCode replayed', async () => {
    const req = signed()
    expect((await request(a, b.peerId, fastPathProtocol, req)).status).toBe('granted')
    expect(await request(a, b.peerId, fastPathProtocol, req)).toEqual({
      status: 'refused',
      reasonCode: 'replayed',
    })
    // the very same frame bytes, replayed on a raw stream
    const frame = (await import('../src/index.ts')).encodeFrame(fastPathProtocol.encodeRequest(req))
    const stream = await a.dialProtocol(b.peerId, FAST_PATH_PROTOCOL)
    stream.send(frame)
    await stream.close()
    expect(decodeReply(fastPathProtocol, await readMessage(stream))).toEqual({
      status: 'refused',
      reasonCode: 'replayed',
    })
  })

  it('refuses expired, badly signed, unknown-capsule and policy-denied requests', async () => {
    const expired = await request(
      a,
      b.peerId,
      fastPathProtocol,
      signed({ expiry: nowSeconds() - 1n }),
    )
    expect(expired).toEqual({ status: 'refused', reasonCode: 'expired' })

    const tampered = { ...signed(), measurement: rand(32) }
    expect(await request(a, b.peerId, fastPathProtocol, tampered)).toEqual({
      status: 'refused',
      reasonCode: 'bad-signature',
    })

    const unknown = await request(a, b.peerId, fastPathProtocol, signed({ capsuleId: rand(32) }))
    expect(unknown).toEqual({ status: 'refused', reasonCode: 'unknown-capsule' })

    const otherKey = rand(32)
    const stranger = signAccessRequest(
      {
        capsuleId,
        executor: addressOfPrivateKey(otherKey),
        ephemeralKey: rand(32),
        measurement: rand(32),
        nonce: rand(32),
        expiry: nowSeconds() + 60n,
        jobParamsHash: EMPTY_JOB_HASH,
        fee: 0n,
        jobParams: new Uint8Array(0),
      },
      domain,
      otherKey,
    )
    expect(await request(a, b.peerId, fastPathProtocol, stranger)).toEqual({
      status: 'refused',
      reasonCode: 'policy-denied',
      reason: 'executor not allow-listed',
    })
  })
})

describe('result delivery over libp2p', () => {
  const domain = {
    chainId: 31337n,
    verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3' as const,
  }
  const signedDelivery = (sealed: Uint8Array, receiverKey: Uint8Array) => {
    const fields = {
      runId: rand(32),
      capsuleId: rand(32),
      grantId: rand(32),
      executor: addressOfPrivateKey(VECTOR_PRIVATE_KEY),
      receiverKey,
      measurement: rand(32),
      runMeasurement: rand(32),
      resultHash: resultHashOf(sealed),
      resultSize: sealed.length,
    }
    return { ...fields, signature: signResult(fields, domain, VECTOR_PRIVATE_KEY) }
  }

  it('delivers a 1 MiB signed, sealed result inline and a CID reference', async () => {
    const receiver = generateX25519KeyPair()
    const ids = { runId: rand(32), capsuleId: rand(32), grantId: rand(32) }
    const result = rand(1024 * 1024)
    const sealed = encodeHpkeSealed(await hpkeSeal(receiver.publicKey, result, resultAad(ids)))
    const d = signedDelivery(sealed, receiver.publicKey)
    const ack = await request(a, b.peerId, resultProtocol, { ...d, hpke: sealed })
    expect(ack).toEqual({ runId: d.runId, status: 'ok' })
    const byCid = await request(a, b.peerId, resultProtocol, {
      ...d,
      resultCid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
    })
    expect(byCid).toEqual({
      runId: d.runId,
      status: 'refused',
      reasonCode: 'fetch-failed',
      retryAfterMs: 50,
    })
    expect(recoverResultSigner({ ...d, hpke: sealed }, domain)).toBe(
      toChecksumAddress(addressOfPrivateKey(VECTOR_PRIVATE_KEY)),
    )
  })

  it('refuses to send a result over the frame limit, before dialling', async () => {
    const big = new Uint8Array(4 * 1024 * 1024)
    const d = signedDelivery(big, rand(32))
    await expect(request(a, b.peerId, resultProtocol, { ...d, hpke: big })).rejects.toMatchObject({
      code: 'WIRE_TOO_LARGE',
    })
  })
})

describe('bad input over real streams', () => {
  const requestTypes: Record<string, string> = {
    'key-release': KEY_RELEASE_PROTOCOL,
    'access-request': FAST_PATH_PROTOCOL,
    'result-delivery': RESULT_PROTOCOL,
  }
  const remoteCodes: Record<string, string> = {
    WIRE_FORMAT: 'format',
    WIRE_VERSION: 'version',
    WIRE_TOO_LARGE: 'too-large',
    WIRE_TRUNCATED: 'truncated',
  }
  const badVectors = [
    ...readdirSync(VECTOR_DIR).map((f) => ({
      file: f,
      ...parseVector(readFileSync(join(VECTOR_DIR, f), 'utf8')),
    })),
    ...readdirSync(RESULT_VECTOR_DIR).map((f) => ({
      file: `result-vectors/${f}`,
      ...parseVector(readFileSync(join(RESULT_VECTOR_DIR, f), 'utf8')),
    })),
  ]
    .filter(
      (v) =>
        v.header.expect !== 'ok' && v.header.type !== undefined && v.header.type in requestTypes,
    )
    // One request per stream: bytes after the request frame are never read (SPEC §2).
    .filter((v) => v.file !== 'frame-trailing-bytes.txt')

  it('has request-direction bad vectors to send', () => {
    expect(badVectors.length).toBeGreaterThanOrEqual(29)
  })

  it.each(
    badVectors.map((v) => [v.file, v] as const),
  )('%s gets a typed error reply', async (_file, v) => {
    const before = errors.length
    const reply = await raw(requestTypes[v.header.type as string]!, v.frame)
    expect(reply).toBeInstanceOf(WireRemoteError)
    expect((reply as WireRemoteError).remoteCode).toBe(remoteCodes[v.header.expect as string])
    expect(errors.length).toBe(before + 1)
    expect(errors.at(-1)?.code).toBe(v.header.expect)
  })

  it('the node keeps serving after all that', async () => {
    await stillServes()
  })

  it('a peer that pushes far more than the limit is cut off; the node keeps serving', async () => {
    const huge = new Uint8Array(512 * 1024)
    huge.set([0x80, 0x80, 0x80, 0x01]) // declares 2 MiB
    const before = errors.length
    const reply = await raw(KEY_RELEASE_PROTOCOL, huge)
    expect(errors[before]?.code).toBe('WIRE_TOO_LARGE')
    // Either the error reply got out before the reset, or the reset came first.
    const code = (reply as DigicapError).code
    expect(['WIRE_REMOTE', 'WIRE_STREAM', 'WIRE_TRUNCATED']).toContain(code)
    if (code === 'WIRE_REMOTE') expect((reply as WireRemoteError).remoteCode).toBe('too-large')
    await stillServes()
  })

  it('a stream that closes without sending gets truncated; one that stalls is timed out', async () => {
    const empty = await raw(KEY_RELEASE_PROTOCOL, new Uint8Array(0))
    expect((empty as WireRemoteError).remoteCode).toBe('truncated')

    const before = errors.length
    const started = Date.now()
    const stalled = await raw(impatientProtocol.id, new Uint8Array([0x05, 0xa1]), false)
    expect(Date.now() - started).toBeLessThan(3000)
    expect(['WIRE_STREAM', 'WIRE_TRUNCATED']).toContain((stalled as DigicapError).code)
    expect(errors.slice(before).map((e) => e.code)).toContain('WIRE_TIMEOUT')
    await stillServes()
  })

  it('a throwing handler gives an internal error reply without its message', async () => {
    const { grantId, publicKey } = newRun()
    const err = await request(
      a,
      b.peerId,
      throwingProtocol,
      await sealedRelease(grantId, publicKey, rand(32)),
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WireRemoteError)
    expect((err as WireRemoteError).remoteCode).toBe('internal')
    expect((err as Error).message).not.toContain('secret')
    expect(errors.at(-1)?.code).toBe('HANDLER_FAILED')
    await stillServes()
  })
})

describe('requester limits', () => {
  it('times out with WIRE_TIMEOUT and aborts with WIRE_ABORTED', async () => {
    const { grantId, publicKey } = newRun()
    const release = await sealedRelease(grantId, publicKey, rand(32))
    await expect(
      request(a, b.peerId, slowProtocol, release, { timeout: 200 }),
    ).rejects.toMatchObject({ code: 'WIRE_TIMEOUT' })
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 100)
    await expect(
      request(a, b.peerId, slowProtocol, release, { signal: controller.signal }),
    ).rejects.toMatchObject({ code: 'WIRE_ABORTED' })
    await expect(
      request(a, b.peerId, slowProtocol, release, { signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'WIRE_ABORTED' })
  })

  it('after unhandle the protocol is gone (WIRE_STREAM); the others still serve', async () => {
    const temporary: WireProtocol<KeyRelease, ReleaseAck> = {
      ...keyReleaseProtocol,
      id: '/digicap-test/temporary/1.0.0',
    }
    const unhandle = await handle(b, temporary, executorHandler)
    const { grantId, publicKey } = newRun()
    const release = await sealedRelease(grantId, publicKey, rand(32))
    expect((await request(a, b.peerId, temporary, release)).status).toBe('ok')
    await unhandle()
    await expect(request(a, b.peerId, temporary, release)).rejects.toMatchObject({
      code: 'WIRE_STREAM',
    })
    await stillServes()
  })

  it('a protocol the peer does not speak is WIRE_STREAM', async () => {
    const { grantId, publicKey } = newRun()
    await expect(
      request(
        a,
        b.peerId,
        { ...keyReleaseProtocol, id: '/digicap/nope/1.0.0' },
        await sealedRelease(grantId, publicKey, rand(32)),
      ),
    ).rejects.toMatchObject({ code: 'WIRE_STREAM' })
  })

  it('a malformed response is a typed error at the requester', async () => {
    // b answers the fast path; asking it with a codec that expects a release-ack fails typed
    const liar: WireProtocol<AccessRequest, ReleaseAck> = {
      ...fastPathProtocol,
      decodeResponse: keyReleaseProtocol.decodeResponse,
    } as unknown as WireProtocol<AccessRequest, ReleaseAck>
    const req = signAccessRequest(
      {
        capsuleId: rand(32),
        executor: executorAddress,
        ephemeralKey: rand(32),
        measurement: rand(32),
        nonce: rand(32),
        expiry: nowSeconds() + 60n,
        jobParamsHash: EMPTY_JOB_HASH,
        fee: 0n,
        jobParams: new Uint8Array(0),
      },
      domain,
      executorKey,
    )
    const err = await request(a, b.peerId, liar, req).catch((e: unknown) => e)
    expect((err as DigicapError).code).toBe('WIRE_FORMAT')
    expect((err as DigicapError).details.field).toBe('t')
  })

  it('rate limiting answers rate-limited with retryAfterMs', async () => {
    let last: AccessResponse | undefined
    for (let i = 0; i < 40 && last?.status !== 'refused'; i++) {
      last = await request(a, b.peerId, fastPathProtocol, {
        capsuleId: rand(32),
        executor: executorAddress,
        ephemeralKey: rand(32),
        measurement: rand(32),
        nonce: rand(32),
        expiry: nowSeconds() - 5n,
        jobParamsHash: EMPTY_JOB_HASH,
        fee: 0n,
        jobParams: new Uint8Array(0),
        signature: new Uint8Array(65),
      })
      if (last.status === 'refused' && last.reasonCode === 'expired') last = undefined
    }
    expect(last).toMatchObject({ status: 'refused', reasonCode: 'rate-limited' })
    expect(last?.status === 'refused' && (last.retryAfterMs ?? 0) > 0).toBe(true)
  })
})

it('error replies decode strictly too', () => {
  expect(() => decodeErrorReply(new Uint8Array([0xa0]))).toThrow(
    expect.objectContaining({ code: 'WIRE_FORMAT' }),
  )
})
