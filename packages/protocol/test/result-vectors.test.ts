import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import {
  generateResultVectors,
  RESULT_VECTOR_DIR,
  RESULT_VECTOR_DOMAIN,
} from '../scripts/generate-result-vectors.ts'
import { hex, parseVector, toHex } from '../scripts/generate-vectors.ts'
import {
  addressToBytes,
  checkResultDelivery,
  decodeFrame,
  decodeResultAck,
  decodeResultDelivery,
  encodeResultAck,
  encodeResultDelivery,
  type GrantRecord,
  grantIdOf,
  headerResultCapsules,
  isRetryableResultRefusal,
  RESULT_REFUSAL_CODES,
  type ResultAck,
  type ResultDelivery,
  ResultHeaderInvalidError,
  recoverResultSigner,
  resultAad,
  resultDigest,
} from '../src/index.ts'

const files = readdirSync(RESULT_VECTOR_DIR).sort()
const read = (f: string) => parseVector(readFileSync(join(RESULT_VECTOR_DIR, f), 'utf8'))
const frames = files.filter((f) => read(f).header.protocol !== undefined)
const verdicts = files.filter((f) => read(f).header.verdict !== undefined)

// biome-ignore lint/suspicious/noExplicitAny: a table of codecs of different message types
const codecs: Record<string, [(b: Uint8Array) => any, (m: any) => Uint8Array]> = {
  'result-delivery': [decodeResultDelivery, encodeResultDelivery],
  'result-ack': [decodeResultAck, encodeResultAck],
}

describe('result vectors', () => {
  it('match the generator byte for byte (no drift)', () => {
    const generated = generateResultVectors()
    expect(files).toEqual([...generated.keys()].sort())
    for (const name of files) {
      expect(readFileSync(join(RESULT_VECTOR_DIR, name), 'utf8'), name).toBe(generated.get(name))
    }
  })

  it('give every refusal a receiver decides alone a verdict vector', () => {
    const got = new Set(verdicts.map((f) => read(f).header.verdict))
    // rate-limited and busy depend on load; fetch-failed, hash-mismatch and open-failed on
    // the network and HPKE: those are tested over libp2p in @digicap/executor.
    for (const code of RESULT_REFUSAL_CODES) {
      if (['rate-limited', 'busy', 'fetch-failed', 'hash-mismatch', 'open-failed'].includes(code))
        continue
      expect(got, code).toContain(code)
    }
    expect(got).toContain('ok')
  })

  it.each(frames)('%s decodes to its expected outcome', (file) => {
    const { header, frame } = read(file)
    const [decode, encode] = codecs[header.type as string]!
    const body = decodeFrame(frame, Number(header['max-size']))
    if (header.expect === 'ok') {
      const message = decode(body)
      expect(encode(message)).toEqual(body)
      if (header.retryable !== undefined) {
        const ack = message as ResultAck
        expect(ack.status).toBe('refused')
        expect(ack.status === 'refused' && isRetryableResultRefusal(ack)).toBe(
          header.retryable === 'yes',
        )
      }
      return
    }
    let caught: unknown
    try {
      decode(body)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(DigicapError)
    expect((caught as DigicapError).code).toBe(header.expect)
    if (header.field !== undefined)
      expect((caught as DigicapError).details.field).toBe(header.field)
  })

  it.each(verdicts)('%s gets its verdict', (file) => {
    const { header: h, frame } = read(file)
    const delivery = decodeResultDelivery(decodeFrame(frame, Number(h['max-size'])))
    const domain = {
      chainId: BigInt(h['chain-id'] as string),
      verifyingContract: h['access-controller'] as `0x${string}`,
    }
    expect(toHex(resultDigest(delivery, domain))).toBe(h.digest)
    if (h.signer !== undefined) expect(recoverResultSigner(delivery, domain)).toBe(h.signer)
    const grant: GrantRecord | undefined =
      h['grant-executor'] === undefined
        ? undefined
        : {
            executor: addressToBytes(h['grant-executor'] as `0x${string}`),
            capsuleId: hex(h['grant-capsule-id'] as string),
            ephemeralKey: hex(h['grant-ephemeral-key'] as string),
            runIndex: BigInt(h['grant-run-index'] as string),
          }
    const verdict = checkResultDelivery(delivery, {
      domain,
      receiverKey: hex(h['receiver-key'] as string),
      maxResultSize: Number(h['max-result-size']),
      seen: h.seen === 'yes',
      grant,
      ...(h['header-receivers'] === undefined
        ? {}
        : { receivers: (h['header-receivers'] as string).split(',').map((k) => hex(k)) }),
    })
    expect(verdict.ok ? 'ok' : verdict.reasonCode).toBe(h.verdict)
  })

  const headerRules = files.filter((f) => read(f).header.rule === 'header-receivers')

  it('has the header rule vectors of check 11', () => {
    expect(headerRules.length).toBeGreaterThanOrEqual(5)
  })

  it.each(headerRules)('%s: check 11 reads the header as the vector says', async (file) => {
    const { header: h, frame: bytes } = read(file)
    const cid = 'bafyvector'
    const capsules = headerResultCapsules({
      registry: { getCapsule: async () => ({ owner: h['registered-owner'] as string, cid }) },
      store: {
        async *get(asked: string) {
          expect(asked).toBe(cid)
          for (let i = 0; i < bytes.length; i += 1000) yield bytes.subarray(i, i + 1000)
        },
      },
    })
    const got = await capsules.receiversOf(hex(h['capsule-id'] as string)).then(
      (keys) => ({ keys }),
      (error: unknown) => ({ error }),
    )
    if (h.expect === 'ok') {
      expect('keys' in got && got.keys?.map((k) => toHex(k)).join(',')).toBe(h.receivers)
      return
    }
    expect(h.expect).toBe('not-a-receiver')
    expect('error' in got && got.error).toBeInstanceOf(ResultHeaderInvalidError)
    expect((got as { error: ResultHeaderInvalidError }).error.details.why).toBe(h['header-invalid'])
  })

  it('rule vectors: the AAD and the grant id', () => {
    const aad = read('rule-aad.txt').header
    expect(
      toHex(
        resultAad({
          runId: hex(aad['run-id'] as string),
          capsuleId: hex(aad['capsule-id'] as string),
          grantId: hex(aad['grant-id'] as string),
        }),
      ),
    ).toBe(aad.aad)
    const g = read('rule-grant-id.txt').header
    const id = grantIdOf(
      {
        chainId: BigInt(g['chain-id'] as string),
        verifyingContract: g['access-controller'] as `0x${string}`,
      },
      {
        executor: addressToBytes(g.executor as `0x${string}`),
        capsuleId: hex(g['capsule-id'] as string),
        ephemeralKey: hex(g['ephemeral-key'] as string),
        runIndex: BigInt(g['run-index'] as string),
      },
      hex(g.measurement as string),
    )
    expect(toHex(id)).toBe(g['grant-id'])
  })

  it('a delivery signed by ethers signTypedData is the same signature (one EIP-712, wallet-compatible)', async () => {
    const { Wallet } = await import('ethers')
    const { resultTypedData } = await import('../src/index.ts')
    const ok = decodeResultDelivery(
      decodeFrame(read('verdict-ok.txt').frame, 4194304),
    ) as ResultDelivery
    const wallet = new Wallet('0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80')
    const td = resultTypedData(ok, RESULT_VECTOR_DOMAIN)
    const sig = await wallet.signTypedData(
      td.domain as Record<string, unknown>,
      td.types,
      td.message,
    )
    expect(sig).toBe(`0x${toHex(ok.signature)}`)
  })
})
