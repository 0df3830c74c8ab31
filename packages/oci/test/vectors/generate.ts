/**
 * Regenerates the vector files next to this script (run by hand: `node test/vectors/generate.ts`;
 * the skopeo vectors need skopeo). The skopeo vectors are made by the real ocicrypt/go-jose,
 * so they pin interop without running skopeo in the suite; the others pin this package's own
 * deterministic outputs (fixed keys and nonces).
 */
import { execFileSync } from 'node:child_process'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { gzipSync } from 'node:zlib'
import {
  createLayout,
  encodePrivateOptions,
  encodePublicOptions,
  layerEncryptor,
  sealDigicapPayload,
} from '../../src/index.ts'

const here = import.meta.dirname
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const b64 = (b: Uint8Array | string) => Buffer.from(b).toString('base64')
const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}` as const
const write = (name: string, value: unknown) =>
  writeFile(join(here, name), `${JSON.stringify(value, null, 2)}\n`)

// 1. the layer cipher with a fixed key and nonce
{
  const plain = new TextEncoder().encode('digicap oci vector: a layer that is not a multiple of 16 bytes')
  const symmetricKey = Uint8Array.from({ length: 32 }, (_, i) => i)
  const nonce = Uint8Array.from({ length: 16 }, (_, i) => 0xf0 + i)
  nonce[15] = 0xff // the counter carries into byte 14 after the first block
  const enc = layerEncryptor({ digest: sha(plain), symmetricKey, nonce })
  const ciphertext = await buffer(Readable.from([plain]).pipe(enc.stream))
  const r = enc.result()
  await write('layer-aes-ctr-hmac.json', {
    description: 'AES-256-CTR (nonce = initial counter block, 128-bit big-endian increment) then HMAC-SHA256(symkey, ciphertext); options JSON as Go writes it',
    symkey: hex(symmetricKey),
    nonce: hex(nonce),
    plain: hex(plain),
    ciphertext: hex(ciphertext),
    hmac: hex(r.public.hmac),
    blobDigest: r.digest,
    privateOptions: new TextDecoder().decode(encodePrivateOptions(r.private)),
    publicOptions: new TextDecoder().decode(encodePublicOptions(r.public)),
  })
}

// 2. the Digicap payload with a fixed data key, capsule id and nonce
{
  const privateOptions = new TextEncoder().encode('{"symkey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","cipheroptions":{"nonce":"8PHy8/T19vf4+fr7/P3+/w=="}}')
  const capsuleId = `0x${'ab'.repeat(32)}` as const
  const dataKey = new Uint8Array(32).fill(7)
  const nonce = new Uint8Array(12).fill(9)
  const wrappedKeys = [{ scheme: 'software-rsa-oaep-sha256', keyId: 'cd'.repeat(32), ciphertext: new Uint8Array(256).fill(1) }]
  const payload = sealDigicapPayload(privateOptions, { capsuleId, dataKey, wrappedKeys }, nonce)
  await write('digicap-payload.json', {
    description: 'provider.digicap payload (SPEC §3) for fixed inputs; the annotation value is base64(payload)',
    capsuleId,
    dataKey: hex(dataKey),
    nonce: hex(nonce),
    wrappedKeys: wrappedKeys.map((w) => ({ ...w, ciphertext: b64(w.ciphertext) })),
    privateOptions: new TextDecoder().decode(privateOptions),
    payload: new TextDecoder().decode(payload),
  })
}

// 3. the keyprovider requests, byte for byte as ocicrypt's json.Marshal writes them
{
  const payloadVector = JSON.parse(await readFile(join(here, 'digicap-payload.json'), 'utf8'))
  const path = b64('/etc/digicap/capsule.json')
  await write('keyprovider-keywrap.json', {
    description: 'what ocicrypt writes to the keyprovider for --encryption-key provider:digicap:/etc/digicap/capsule.json',
    request: `{"op":"keywrap","keywrapparams":{"ec":{"Parameters":{"digicap":["${path}"]},"DecryptConfig":{"Parameters":{}}},"optsdata":"${b64(payloadVector.privateOptions)}"},"keyunwrapparams":{"dc":null,"annotation":null}}`,
    parameters: { digicap: ['/etc/digicap/capsule.json'] },
    optsData: payloadVector.privateOptions,
  })
  await write('keyprovider-keyunwrap.json', {
    description: 'what ocicrypt writes to the keyprovider for --decryption-key provider:digicap:/etc/digicap/capsule.json on a layer with the digicap-payload.json annotation',
    request: `{"op":"keyunwrap","keywrapparams":{"ec":null,"optsdata":null},"keyunwrapparams":{"dc":{"Parameters":{"digicap":["${path}"]}},"annotation":"${b64(payloadVector.payload)}"}}`,
    parameters: { digicap: ['/etc/digicap/capsule.json'] },
    response: `{"keyunwrapresults":{"optsdata":"${b64(payloadVector.privateOptions)}"}}`,
  })
}

// 4. layers encrypted by the real skopeo/ocicrypt (go-jose) to an RSA and an EC key
for (const kind of ['rsa', 'ec'] as const) {
  const work = await mkdtemp(join(tmpdir(), 'oci-vectors-'))
  const pair =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const layout = await createLayout(join(work, 'plain'))
  const tar = execFileSync('tar', ['--mtime=2026-01-01 00:00Z', '--owner=0', '--group=0', '-C', here, '-cf', '-', 'README.md'])
  const gz = new Uint8Array(gzipSync(tar))
  const layer = await layout.writeBytes(gz)
  const config = await layout.writeBytes(new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(tar)] } })))
  const manifest = await layout.writeBytes(new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
  })))
  await layout.writeIndex({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'v' } }] })
  await writeFile(join(work, 'pub.pem'), pair.publicKey.export({ type: 'spki', format: 'pem' }))
  execFileSync('skopeo', ['--insecure-policy', 'copy', '--encryption-key', `jwe:${join(work, 'pub.pem')}`, `oci:${join(work, 'plain')}:v`, `oci:${join(work, 'sealed')}:v`])
  const index = JSON.parse(await readFile(join(work, 'sealed', 'index.json'), 'utf8'))
  const sealedManifest = JSON.parse(await readFile(join(work, 'sealed', 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'))
  const descriptor = sealedManifest.layers[0]
  const blob = await readFile(join(work, 'sealed', 'blobs', 'sha256', descriptor.digest.slice(7)))
  await write(`skopeo-jwe-${kind}.json`, {
    description: `one layer encrypted by ${execFileSync('skopeo', ['--version']).toString().trim()} (ocicrypt, go-jose) to jwe:${kind === 'rsa' ? 'RSA-2048' : 'EC P-256'}; a throwaway test key`,
    privateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    descriptor,
    blob: b64(blob),
    plain: b64(gz),
    plainDigest: layer.digest,
  })
}
console.log('vectors written to', here)
