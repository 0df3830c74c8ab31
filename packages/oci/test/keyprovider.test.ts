/**
 * The keyprovider command, `provider:digicap`, fed the exact JSON ocicrypt writes (built here
 * as Go marshals it): keywrap gives a Digicap payload, keyunwrap gives the options back, and
 * another capsule's key file, a world-readable key file, missing or extra parameters and
 * malformed requests are refused. (Debian's skopeo 1.9.3 vendors ocicrypt 1.0.3, which has no
 * keyprovider support, so skopeo itself cannot run this command here.)
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { toHex } from '@digicap/capsule-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type CapsuleKey,
  encodeCapsuleKey,
  fileKeyProvider,
  OciFormatError,
  OciKeyError,
  parseDigicapPayload,
  parseKeyProviderRequest,
  sealDigicapPayload,
} from '../src/index.ts'

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64')
const command = join(import.meta.dirname, 'keyprovider-command.ts')

/** Runs the command with `input` on stdin; resolves with exit code, stdout and stderr. */
function provider(input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [command],
      { timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    )
    child.stdin?.end(input)
  })
}

function capsuleKey(): CapsuleKey {
  return {
    capsuleId: toHex(new Uint8Array(randomBytes(32))),
    dataKey: new Uint8Array(randomBytes(32)),
    wrappedKeys: [
      {
        scheme: 'software-rsa-oaep-sha256',
        keyId: 'test-key',
        ciphertext: new Uint8Array(randomBytes(256)),
      },
    ],
  }
}

describe('digicap-oci-keyprovider', () => {
  let work: string
  const key = capsuleKey()
  let keyFile: string
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'oci-keyprovider-'))
    keyFile = join(work, 'capsule.json')
    await writeFile(keyFile, encodeCapsuleKey(key), { mode: 0o600 })
  })
  afterAll(() => rm(work, { recursive: true, force: true }))

  it('answers the keywrap JSON ocicrypt sends with a Digicap payload, and the keyunwrap JSON with the options', async () => {
    const optsData = new TextEncoder().encode(
      '{"symkey":"AAAA","digest":"sha256:00","cipheroptions":{}}',
    )
    const wrapRequest = `{"op":"keywrap","keywrapparams":{"ec":{"Parameters":{"digicap":["${b64(keyFile)}"]},"DecryptConfig":{"Parameters":{}}},"optsdata":"${b64(optsData)}"},"keyunwrapparams":{"dc":null,"annotation":null}}`
    const wrapped = await provider(wrapRequest)
    expect(wrapped.stderr).toBe('')
    expect(wrapped.code).toBe(0)
    const annotation = Buffer.from(JSON.parse(wrapped.stdout).keywrapresults.annotation, 'base64')
    expect(parseDigicapPayload(annotation).capsuleId).toBe(key.capsuleId)
    const unwrapRequest = `{"op":"keyunwrap","keywrapparams":{"ec":null,"optsdata":null},"keyunwrapparams":{"dc":{"Parameters":{"digicap":["${b64(keyFile)}"]}},"annotation":"${annotation.toString('base64')}"}}`
    const unwrapped = await provider(unwrapRequest)
    expect(unwrapped.code).toBe(0)
    expect(Buffer.from(JSON.parse(unwrapped.stdout).keyunwrapresults.optsdata, 'base64')).toEqual(
      Buffer.from(optsData),
    )
    // another capsule's key file does not open it; ocicrypt sees exit code 1 and moves on
    const otherFile = join(work, 'other.json')
    await writeFile(otherFile, encodeCapsuleKey(capsuleKey()), { mode: 0o600 })
    const refused = await provider(unwrapRequest.replace(b64(keyFile), b64(otherFile)))
    expect(refused.code).toBe(1)
    expect(refused.stdout).toBe('')
    expect(refused.stderr).toContain('OCI_KEY')
  })

  it('refuses, in process: a world-readable key file, no parameter, two wrap parameters, another capsule', async () => {
    const handle = fileKeyProvider()
    const request = (op: 'keywrap' | 'keyunwrap', files: string[], annotation = 'AAAA') =>
      new TextEncoder().encode(
        op === 'keywrap'
          ? `{"op":"keywrap","keywrapparams":{"ec":{"Parameters":{"digicap":[${files.map((f) => `"${b64(f)}"`).join(',')}]},"DecryptConfig":{"Parameters":{}}},"optsdata":"AAAA"},"keyunwrapparams":{"dc":null,"annotation":null}}`
          : `{"op":"keyunwrap","keywrapparams":{"ec":null,"optsdata":null},"keyunwrapparams":{"dc":{"Parameters":{${files.length ? `"digicap":[${files.map((f) => `"${b64(f)}"`).join(',')}]` : ''}}},"annotation":"${annotation}"}}`,
      )
    const loose = join(work, 'loose.json')
    await writeFile(loose, encodeCapsuleKey(key))
    await chmod(loose, 0o644)
    await expect(handle(request('keywrap', [loose]))).rejects.toMatchObject({
      code: 'OCI_KEY',
      details: { mode: '644' },
    })
    await expect(handle(request('keywrap', []))).rejects.toBeInstanceOf(OciKeyError)
    await expect(handle(request('keywrap', [keyFile, keyFile]))).rejects.toBeInstanceOf(OciKeyError)
    await expect(handle(request('keywrap', [join(work, 'missing.json')]))).rejects.toBeInstanceOf(
      OciKeyError,
    )
    const payload = sealDigicapPayload(new Uint8Array([1]), key)
    const other = join(work, 'other3.json')
    await writeFile(other, encodeCapsuleKey(capsuleKey()), { mode: 0o600 })
    await expect(handle(request('keyunwrap', [other], b64(payload)))).rejects.toBeInstanceOf(
      OciKeyError,
    )
    await expect(handle(request('keyunwrap', [], b64(payload)))).rejects.toBeInstanceOf(OciKeyError)
    const opened = JSON.parse(
      new TextDecoder().decode(await handle(request('keyunwrap', [other, keyFile], b64(payload)))),
    )
    expect(opened.keyunwrapresults.optsdata).toBe(b64(new Uint8Array([1])))
  })

  it('refuses malformed requests with typed errors', async () => {
    expect(() => parseKeyProviderRequest(new TextEncoder().encode('{"op":"wrap"}'))).toThrow(
      OciFormatError,
    )
    expect(() => parseKeyProviderRequest(new TextEncoder().encode('[]'))).toThrow(OciFormatError)
    expect(() =>
      parseKeyProviderRequest(
        new TextEncoder().encode(
          '{"op":"keyunwrap","keyunwrapparams":{"dc":null,"annotation":"@@"}}',
        ),
      ),
    ).toThrow(OciFormatError)
    await expect(fileKeyProvider()(new TextEncoder().encode('not json'))).rejects.toBeInstanceOf(
      OciFormatError,
    )
  })
})
