/**
 * A PCR-bound wrapping key made by `pi-node init`, and the measured start that covers "this
 * software" (real anvil, real swtpm, restarted on its own state as a reboot):
 * init --pcr-policy 7,15 pins the release, measures it into PCR 15 and approves the values →
 * seal (the owner key unwraps through the policy) and the capsule key unwraps → PCR 7 extended
 * → seal refused (TPM_POLICY naming PCR 7) → key-policy authorize → it unwraps again.
 * Then a modified install: verify-install refuses it naming the file; after a reboot with the
 * check skipped (PCR 15 at reset) or bypassed with another signer's manifest (another value in
 * PCR 15), the TPM refuses; a reboot into the released files measures the approved value again.
 */
import { execFile } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createReleaseManifest } from '@digicap/cli-kit'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import {
  createKeyStore,
  expectedReleasePcr,
  readPcrValues,
  releaseMeasurement,
  TPM2_KEY_RECORD_FILE,
  tpm2Sealer,
  unwrapDataKey,
} from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Doc, runCli, runJson } from './helpers/cli.ts'

const exec = promisify(execFile)
const rawKey = (k: ReturnType<typeof generateKeyPairSync>['publicKey']) =>
  (k.export({ format: 'der', type: 'spki' }) as Buffer).subarray(12).toString('hex')
const release = generateKeyPairSync('ed25519')
const attacker = generateKeyPairSync('ed25519')

let anvil: Anvil
let tpm: Swtpm
let stateDir: string
let dir: string
let root: string
let manifestFile: string
let env: Record<string, string>
let words: string
let capsuleId: string

const tools = () => ({ env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti } })

/** A clean power cycle: TPM2_Shutdown, then swtpm again on the same state (PCRs at reset). */
async function reboot(): Promise<void> {
  await exec('tpm2_shutdown', [], tools())
  await tpm.stop()
  tpm = await startSwtpm({ stateDir })
  env.DIGICAP_TCTI = tpm.tcti
}

/** The capsule's data key through the node's sealer (what the keyguard does on a release). */
async function unwrapCapsuleKey(): Promise<Uint8Array> {
  const record = await (await createKeyStore(join(env.DIGICAP_DATA_DIR as string, 'keys'))).get(
    capsuleId,
  )
  const sealer = tpm2Sealer({
    tcti: tpm.tcti,
    keyRecordFile: join(env.DIGICAP_DATA_DIR as string, TPM2_KEY_RECORD_FILE),
  })
  return unwrapDataKey(record?.wrappedKeys ?? [], sealer)
}

async function refusal(pcr: number): Promise<void> {
  const err = await unwrapCapsuleKey().catch((e: unknown) => e)
  expect((err as { code?: string }).code).toBe('TPM_POLICY')
  expect((err as Error).message).toMatch(new RegExp(`PCR ${pcr} `))
  expect((err as { details?: Doc }).details?.differing).toEqual([pcr])
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-node-measured-'))
  stateDir = join(dir, 'swtpm')
  await mkdir(stateDir)
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm({ stateDir })])
  root = join(dir, 'install')
  await mkdir(join(root, 'dist'), { recursive: true })
  await writeFile(join(root, 'dist', 'cli.js'), 'console.log("pi-node")\n')
  manifestFile = join(dir, 'release.json')
  const manifest = await createReleaseManifest(root, '@digicap/pi-node@1.0.0', release.privateKey)
  await writeFile(manifestFile, JSON.stringify(manifest))
  env = {
    DIGICAP_DATA_DIR: join(dir, 'node'),
    DIGICAP_RPC_URL: anvil.rpcUrl,
    DIGICAP_TCTI: tpm.tcti,
  }
}, 60_000)

afterAll(async () => {
  await Promise.all([anvil?.stop(), tpm?.stop()])
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('init with a PCR-bound key and a measured start (swtpm)', () => {
  it('init → seal → unwrap; PCR 7 extended → refused; authorize → unwraps again', async () => {
    const half = await runCli(['init', '--deploy', '--pcr-policy', '7,15', '--json'], {
      ...env,
      DIGICAP_DATA_DIR: join(dir, 'half'),
    })
    expect(half.code).toBe(2)
    expect(half.stderr).toContain('covers the release PCR 15')

    const r = await runCli(
      [
        ...['init', '--deploy', '--pcr-policy', '7,15', '--listen', '/ip4/127.0.0.1/tcp/0'],
        ...['--release-manifest', manifestFile, '--release-key', rawKey(release.publicKey)],
        ...['--release-root', root, '--json'],
      ],
      env,
    )
    expect(r.stderr).not.toContain('error[')
    expect(r.code).toBe(0)
    words = [...r.stderr.matchAll(/^\s*\d+\. ([a-z]+)$/gm)].map((m) => m[1]).join(' ')
    const config = JSON.parse(
      await readFile(join(env.DIGICAP_DATA_DIR as string, 'config.json'), 'utf8'),
    )
    expect(config.sealer.pcrs).toEqual([7, 15])
    expect(config.release).toEqual({
      manifest: manifestFile,
      key: rawKey(release.publicKey),
      root,
    })

    // init measured the release into PCR 15 and approved it: the unit's check finds it done.
    const pcr15 = (await readPcrValues(tpm.tcti, [15])).get(15) as Uint8Array
    const expected = expectedReleasePcr(releaseMeasurement(await readFile(manifestFile)))
    expect(Buffer.from(pcr15).equals(Buffer.from(expected))).toBe(true)
    const start = await runJson(['verify-install', '--measure', '--json'], env)
    expect(start.code).toBe(0)
    expect(start.measured).toMatchObject({ pcr: 15, state: 'already' })
    const shown = await runJson(['key-policy', 'show', '--json'], env)
    expect(shown.keyPolicy).toMatchObject({ pcrBound: true, pcrs: [7, 15], approved: true })
    expect(shown.keyPolicy.lines.every((l: Doc) => l.match)).toBe(true)

    await writeFile(join(dir, 'a.bin'), randomBytes(1000))
    const sealed = await runJson(
      ['seal', join(dir, 'a.bin'), '--policy', 'maxRuns(1)', '--json'],
      env,
    )
    expect(sealed.stderr).not.toContain('error[')
    expect(sealed.code).toBe(0)
    capsuleId = sealed.capsuleId
    expect(await unwrapCapsuleKey()).toHaveLength(32)

    await exec('tpm2_pcrextend', [`7:sha256=${randomBytes(32).toString('hex')}`], tools())
    await refusal(7)
    const refused = await runCli(['seal', join(dir, 'a.bin'), '--policy', 'maxRuns(1)'], env)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('error[TPM_POLICY]')
    expect(refused.stderr).toMatch(/PCR 7\b/)

    const approved = await runCli(['key-policy', 'authorize', '--json'], env, words)
    expect(approved.code).toBe(0)
    expect(await unwrapCapsuleKey()).toHaveLength(32)
  }, 180_000)

  it('a modified install: refused by verify-install; with the check skipped or bypassed the TPM refuses', async () => {
    const file = join(root, 'dist', 'cli.js')
    const released = await readFile(file)
    await writeFile(file, 'console.log("pi-node"); steal()\n')
    const check = await runCli(['verify-install', '--measure'], env)
    expect(check.code).toBe(1)
    expect(check.stderr).toContain('error[INSTALL_TAMPERED]')
    expect(check.stderr).toContain('dist/cli.js')

    // Reboot (PCR 7 back at reset: approve this boot's values, as after an OS update; the
    // release PCR is approved at the pinned manifest's value, not at its value now), then
    // start serve without the check: PCR 15 stays at reset.
    await reboot()
    expect((await runCli(['key-policy', 'authorize'], env, words)).code).toBe(0)
    await refusal(15)

    // Bypass it with a manifest of the modified files signed by another key: another value.
    const evil = join(dir, 'evil.json')
    await writeFile(
      evil,
      JSON.stringify(
        await createReleaseManifest(root, '@digicap/pi-node@6.6.6', attacker.privateKey),
      ),
    )
    const bypass = await runJson(
      [
        'verify-install',
        '--manifest',
        evil,
        '--release-key',
        rawKey(attacker.publicKey),
        '--measure',
        '--json',
      ],
      env,
    )
    expect(bypass.measured).toMatchObject({ pcr: 15, state: 'extended' })
    const good = expectedReleasePcr(releaseMeasurement(await readFile(manifestFile)))
    const now = (await readPcrValues(tpm.tcti, [15])).get(15) as Uint8Array
    expect(Buffer.from(now).equals(Buffer.from(good))).toBe(false)
    await refusal(15)
    // The same boot cannot be measured again into the approved value.
    await writeFile(file, released)
    const late = await runCli(['verify-install', '--measure'], env)
    expect(late.code).toBe(1)
    expect(late.stderr).toContain('PCR 15 already holds another measurement')

    // A reboot into the released files: measured at start, unwraps; a restart measures nothing new.
    await reboot()
    const start = await runJson(['verify-install', '--measure', '--json'], env)
    expect(start.measured).toMatchObject({ pcr: 15, state: 'extended' })
    expect(await unwrapCapsuleKey()).toHaveLength(32)
    const restart = await runJson(['verify-install', '--measure', '--json'], env)
    expect(restart.measured).toMatchObject({ pcr: 15, state: 'already' })
    expect(await unwrapCapsuleKey()).toHaveLength(32)
  }, 180_000)
})
