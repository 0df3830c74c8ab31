/**
 * Every vector file in test/vectors (SPEC.md): the layer cipher and options JSON byte for byte,
 * the Digicap payload byte for byte, layers the real skopeo/ocicrypt encrypted (RSA and EC)
 * opened by the strict decryptor, and the keyprovider requests ocicrypt sends.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { describe, expect, it } from 'vitest'
import {
  decodePrivateOptions,
  digicapUnwrapper,
  encodePrivateOptions,
  encodePublicOptions,
  jweUnwrapper,
  keyUnwrapResponse,
  layerEncryptor,
  OciIntegrityError,
  openLayer,
  parseDigicapPayload,
  parseKeyProviderRequest,
  publicOptionsOf,
  sealDigicapPayload,
  unwrapPrivateOptions,
} from '../src/index.ts'

const vector = (name: string) =>
  JSON.parse(readFileSync(join(import.meta.dirname, 'vectors', name), 'utf8'))
const fromHex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'))
const te = new TextEncoder()
const td = new TextDecoder()

describe('vectors', () => {
  it('layer-aes-ctr-hmac.json: ciphertext, HMAC and both options JSONs', async () => {
    const v = vector('layer-aes-ctr-hmac.json')
    const plain = fromHex(v.plain)
    const enc = layerEncryptor({
      digest: decodePrivateOptions(te.encode(v.privateOptions)).digest,
      symmetricKey: fromHex(v.symkey),
      nonce: fromHex(v.nonce),
    })
    const ciphertext = await buffer(Readable.from([plain]).pipe(enc.stream))
    const r = enc.result()
    expect(ciphertext.toString('hex')).toBe(v.ciphertext)
    expect(Buffer.from(r.public.hmac).toString('hex')).toBe(v.hmac)
    expect(r.digest).toBe(v.blobDigest)
    expect(td.decode(encodePrivateOptions(r.private))).toBe(v.privateOptions)
    expect(td.decode(encodePublicOptions(r.public))).toBe(v.publicOptions)
    const opened = await openLayer([ciphertext], { private: r.private, public: r.public })
    expect(await buffer(opened.stream())).toEqual(Buffer.from(plain))
  })

  it('digicap-payload.json: the payload for fixed inputs, and it opens', async () => {
    const v = vector('digicap-payload.json')
    const wrappedKeys = v.wrappedKeys.map(
      (w: { scheme: string; keyId: string; ciphertext: string }) => ({
        ...w,
        ciphertext: new Uint8Array(Buffer.from(w.ciphertext, 'base64')),
      }),
    )
    const payload = sealDigicapPayload(
      te.encode(v.privateOptions),
      { capsuleId: v.capsuleId, dataKey: fromHex(v.dataKey), wrappedKeys },
      fromHex(v.nonce),
    )
    expect(td.decode(payload)).toBe(v.payload)
    expect(parseDigicapPayload(payload).capsuleId).toBe(v.capsuleId)
    const unwrapper = digicapUnwrapper({
      capsuleId: v.capsuleId,
      dataKey: async () => fromHex(v.dataKey),
    })
    expect(td.decode(await unwrapper.unwrap(payload))).toBe(v.privateOptions)
  })

  for (const kind of ['rsa', 'ec']) {
    it(`skopeo-jwe-${kind}.json: a layer the real ocicrypt encrypted opens byte-identical, and not when flipped`, async () => {
      const v = vector(`skopeo-jwe-${kind}.json`)
      const privateOptions = await unwrapPrivateOptions(v.descriptor.annotations, [
        jweUnwrapper([v.privateKey]),
      ])
      expect(privateOptions.digest).toBe(v.plainDigest)
      const blob = Buffer.from(v.blob, 'base64')
      const opened = await openLayer([blob], {
        private: privateOptions,
        public: publicOptionsOf(v.descriptor.annotations),
        expected: v.descriptor,
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      })
      expect(opened.digest).toBe(v.plainDigest)
      expect((await buffer(opened.stream())).toString('base64')).toBe(v.plain)
      blob[blob.length - 1] = (blob[blob.length - 1] ?? 0) ^ 1
      await expect(
        openLayer([blob], {
          private: privateOptions,
          public: publicOptionsOf(v.descriptor.annotations),
        }),
      ).rejects.toBeInstanceOf(OciIntegrityError)
    })
  }

  it('keyprovider-keywrap.json / keyprovider-keyunwrap.json: the requests parse, the answer is what ocicrypt reads', () => {
    const wrap = vector('keyprovider-keywrap.json')
    const w = parseKeyProviderRequest(te.encode(wrap.request))
    expect(w.op).toBe('keywrap')
    expect(
      Object.fromEntries(
        Object.entries(w.parameters).map(([k, l]) => [k, l.map((b) => td.decode(b))]),
      ),
    ).toEqual(wrap.parameters)
    expect(w.op === 'keywrap' && td.decode(w.optsData)).toBe(wrap.optsData)
    const unwrap = vector('keyprovider-keyunwrap.json')
    const u = parseKeyProviderRequest(te.encode(unwrap.request))
    expect(u.op).toBe('keyunwrap')
    expect(u.op === 'keyunwrap' && td.decode(u.annotation)).toBe(
      vector('digicap-payload.json').payload,
    )
    expect(
      td.decode(keyUnwrapResponse(te.encode(vector('digicap-payload.json').privateOptions))),
    ).toBe(unwrap.response)
  })
})
