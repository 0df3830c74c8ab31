/**
 * Key provisioning and credential activation through tpm2-tools (`runTpm2Tool` of
 * `@digicap/tpm`): rare operations that need policy sessions and the TCG EK templates, which
 * tpm2-tools already implement. The EK is created from the TCG EK profile's default template
 * (`tpm2_createek`, RSA-2048 or ECC P-256), the AK as a restricted signing key under it in the
 * endorsement hierarchy (`tpm2_createak`), both made persistent.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { derSequence, runTpm2Tool, type Tpm2ToolsOptions, TpmHandleError } from '@digicap/tpm'
import { type Credential, encodeCredentialFile } from '../credential/make-credential.ts'

export type KeyKind = 'rsa' | 'ecc'

export function handleText(handle: number): string {
  return `0x${handle.toString(16).padStart(8, '0')}`
}

async function withDir<T>(run: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'digicap-agent-'))
  try {
    return await run(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** TPM2B_PUBLIC of the persistent object at `handle`, or `undefined` when the handle is empty. */
export async function readPublic(
  tools: Tpm2ToolsOptions,
  handle: number,
): Promise<Uint8Array | undefined> {
  return withDir(async (dir) => {
    try {
      await runTpm2Tool(tools, 'tpm2_readpublic', [
        '-c',
        handleText(handle),
        '-f',
        'tss',
        '-o',
        join(dir, 'pub'),
      ])
    } catch (err) {
      if (err instanceof TpmHandleError) return undefined
      throw err
    }
    return new Uint8Array(await readFile(join(dir, 'pub')))
  })
}

/** The TCG EK Credential Profile's NV index of the EK certificate, by EK kind. */
export const EK_CERTIFICATE_NV_INDEX: Readonly<Record<KeyKind, number>> = Object.freeze({
  rsa: 0x01c00002,
  ecc: 0x01c0000a,
})

/**
 * The EK certificate (DER) in the TPM's NV for `kind`, or `undefined` when the index is not
 * defined (a TPM without one, or swtpm set up without `--create-ek-cert`).
 */
export async function readEkCertificate(
  tools: Tpm2ToolsOptions,
  kind: KeyKind,
): Promise<Uint8Array | undefined> {
  const index = handleText(EK_CERTIFICATE_NV_INDEX[kind])
  return withDir(async (dir) => {
    try {
      await runTpm2Tool(tools, 'tpm2_nvreadpublic', [index])
    } catch {
      // not defined: the TPM has no certificate for this EK kind
      return undefined
    }
    await runTpm2Tool(tools, 'tpm2_nvread', ['-C', 'o', '-o', join(dir, 'cert'), index])
    const der = new Uint8Array(await readFile(join(dir, 'cert')))
    // NV indices are often larger than their certificate and padded: keep the DER SEQUENCE only
    return derSequence(der)
  })
}

export async function createEk(
  tools: Tpm2ToolsOptions,
  kind: KeyKind,
  handle: number,
): Promise<Uint8Array> {
  return withDir(async (dir) => {
    await runTpm2Tool(tools, 'tpm2_createek', [
      '-c',
      handleText(handle),
      '-G',
      kind,
      '-f',
      'tss',
      '-u',
      join(dir, 'ek.pub'),
    ])
    await runTpm2Tool(tools, 'tpm2_flushcontext', ['-t'])
    return new Uint8Array(await readFile(join(dir, 'ek.pub')))
  })
}

export async function createAk(
  tools: Tpm2ToolsOptions,
  kind: KeyKind,
  handle: number,
  ekHandle: number,
): Promise<Uint8Array> {
  return withDir(async (dir) => {
    const ctx = join(dir, 'ak.ctx')
    try {
      await runTpm2Tool(tools, 'tpm2_createak', [
        '-C',
        handleText(ekHandle),
        '-c',
        ctx,
        '-G',
        kind,
        '-g',
        'sha256',
        '-s',
        kind === 'ecc' ? 'ecdsa' : 'rsassa',
        '-f',
        'tss',
        '-u',
        join(dir, 'ak.pub'),
      ])
      await runTpm2Tool(tools, 'tpm2_flushcontext', ['-t'])
      await runTpm2Tool(tools, 'tpm2_evictcontrol', ['-C', 'o', '-c', ctx, handleText(handle)])
    } finally {
      await runTpm2Tool(tools, 'tpm2_flushcontext', ['-t']).catch(() => undefined)
    }
    return new Uint8Array(await readFile(join(dir, 'ak.pub')))
  })
}

/**
 * TPM2_ActivateCredential: the EK is authorized by a policy session satisfying the TCG EK
 * policy (PolicySecret of the endorsement hierarchy). The recovered secret passes through a
 * file in a private temporary directory, removed at once.
 */
export async function activateCredential(
  tools: Tpm2ToolsOptions,
  credential: Credential,
  akHandle: number,
  ekHandle: number,
): Promise<Uint8Array> {
  return withDir(async (dir) => {
    await writeFile(join(dir, 'cred'), encodeCredentialFile(credential), { mode: 0o600 })
    const session = join(dir, 'session')
    await runTpm2Tool(tools, 'tpm2_startauthsession', ['--policy-session', '-S', session])
    try {
      await runTpm2Tool(tools, 'tpm2_policysecret', ['-S', session, '-c', 'e'])
      await runTpm2Tool(tools, 'tpm2_activatecredential', [
        '-c',
        handleText(akHandle),
        '-C',
        handleText(ekHandle),
        '-i',
        join(dir, 'cred'),
        '-o',
        join(dir, 'secret'),
        '-P',
        `session:${session}`,
      ])
    } finally {
      await runTpm2Tool(tools, 'tpm2_flushcontext', [session]).catch(() => undefined)
    }
    const secret = new Uint8Array(await readFile(join(dir, 'secret')))
    await writeFile(join(dir, 'secret'), new Uint8Array(secret.length))
    return secret
  })
}
