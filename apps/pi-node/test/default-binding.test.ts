/**
 * The TPM wrapping key is bound to the verified release by default on a hardware TPM (ADR
 * 0036). The default's decision for every kind of TPM; through the CLI, a `device:` TPM with
 * no release is refused at init unless `--no-pcr-policy`. The key that default makes (bound to
 * PCR 15, the release measured and approved by init) on a real swtpm and anvil: the owner
 * file opens through the policy, another value in PCR 15 (another release, or the check
 * skipped and something else measured) makes the TPM refuse. The manifest the install script
 * leaves beside the install is found and pinned without flags.
 */
import { execFile } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createReleaseManifest } from '@digicap/cli-kit'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { TPM2_KEY_RECORD_FILE, tpm2Sealer, unwrapOwnerSecrets } from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { defaultPolicyPcrs, installedRelease, pinRelease } from '@digicap/owner/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Doc, runCli, runJson } from './helpers/cli.ts'

const release = generateKeyPairSync('ed25519')
const rawKey = (release.publicKey.export({ format: 'der', type: 'spki' }) as Buffer)
  .subarray(12)
  .toString('hex')

let anvil: Anvil
let tpm: Swtpm
let dir: string
let root: string
let manifestFile: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-node-default-binding-'))
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
  // An installed tree as install-pi.sh leaves it: <lib>/node_modules/…, <lib>.release.json/-key.
  root = join(dir, 'lib', 'pi-node')
  await mkdir(join(root, 'node_modules', '@digicap', 'pi-node', 'dist'), { recursive: true })
  await writeFile(join(root, 'node_modules', '@digicap', 'pi-node', 'dist', 'cli.js'), '1\n')
  manifestFile = `${root}.release.json`
  const manifest = await createReleaseManifest(root, '@digicap/pi-node@1.0.0', release.privateKey)
  await writeFile(manifestFile, JSON.stringify(manifest))
  await writeFile(`${root}.release-key`, `${rawKey}\n`)
}, 60_000)

afterAll(async () => {
  await Promise.all([anvil?.stop(), tpm?.stop()])
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('the wrapping key is bound to the verified release by default', () => {
  it('binds a device TPM to the release PCR; an emulator or the software sealer only when asked', () => {
    const device = { kind: 'tpm2' as const, tcti: 'device:/dev/tpmrm0' }
    const swtpm = { kind: 'tpm2' as const, tcti: tpm.tcti }
    const software = { kind: 'software' as const, keyFile: '/k', allowInsecure: true as const }
    const pinned = { manifest: manifestFile, key: rawKey }
    expect(defaultPolicyPcrs(device, pinned)).toEqual([15])
    expect(defaultPolicyPcrs(device, { ...pinned, pcr: 14 })).toEqual([14])
    expect(defaultPolicyPcrs(device, pinned, { none: true })).toBeUndefined()
    expect(defaultPolicyPcrs(device, undefined, { pcrs: [7] })).toEqual([7])
    expect(defaultPolicyPcrs(swtpm, pinned)).toBeUndefined()
    expect(defaultPolicyPcrs(software, pinned)).toBeUndefined()
    expect(() => defaultPolicyPcrs(device, undefined)).toThrow(/bound to the verified release/)
    expect(() => defaultPolicyPcrs(device, pinned, { none: true, pcrs: [15] })).toThrow(/not both/)
  })

  it('the default key on swtpm (PCR 15, init measures and approves): opens; another PCR 15 value is refused', async () => {
    const env = {
      DIGICAP_DATA_DIR: join(dir, 'node'),
      DIGICAP_RPC_URL: anvil.rpcUrl,
      DIGICAP_TCTI: tpm.tcti,
    }
    const r = await runCli(
      [
        ...['init', '--deploy', '--pcr-policy', '15', '--listen', '/ip4/127.0.0.1/tcp/0'],
        '--json',
        ...['--release-manifest', manifestFile, '--release-key', rawKey, '--release-root', root],
      ],
      env,
    )
    expect(r.stderr).not.toContain('error[')
    expect(r.code).toBe(0)
    const config = JSON.parse(await readFile(join(env.DIGICAP_DATA_DIR, 'config.json'), 'utf8'))
    expect(config.sealer.pcrs).toEqual([15])
    const shown = await runJson(['key-policy', 'show', '--json'], env)
    expect(shown.keyPolicy).toMatchObject({ pcrBound: true, pcrs: [15], approved: true })
    expect(shown.keyPolicy.lines.every((l: Doc) => l.match)).toBe(true)

    const sealer = () =>
      tpm2Sealer({
        tcti: tpm.tcti,
        keyRecordFile: join(env.DIGICAP_DATA_DIR, TPM2_KEY_RECORD_FILE),
      })
    const owner = join(env.DIGICAP_DATA_DIR, 'owner.json')
    const opened = await unwrapOwnerSecrets(owner, sealer())
    expect(opened.ethereumPrivateKey).toHaveLength(32)
    await promisify(execFile)('tpm2_pcrextend', [`15:sha256=${randomBytes(32).toString('hex')}`], {
      env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti },
    })
    const err = await unwrapOwnerSecrets(owner, sealer()).catch((e: unknown) => e)
    expect((err as { code?: string }).code).toBe('TPM_POLICY')
    expect((err as { details?: Doc }).details?.differing).toEqual([15])
  }, 120_000)

  it('a hardware TPM with no release is refused at init, --no-pcr-policy opts out', async () => {
    const env = {
      DIGICAP_DATA_DIR: join(dir, 'device'),
      DIGICAP_RPC_URL: anvil.rpcUrl,
      DIGICAP_TCTI: 'device:/dev/digicap-no-such-tpm',
    }
    const refused = await runCli(['init', '--deploy', '--json'], env)
    expect(refused.code).toBe(2)
    const doc = JSON.parse(refused.stdout) as Doc
    expect(doc.error.code).toBe('USAGE')
    expect(doc.error.message).toContain('bound to the verified release')
    expect(doc.error.hint).toContain('--no-pcr-policy')
    // Opted out: past the default, on to the (missing) TPM.
    const out = await runCli(['init', '--deploy', '--no-pcr-policy', '--json'], env)
    expect(out.code).toBe(1)
    expect((JSON.parse(out.stdout) as Doc).error.code).toBe('TPM_UNAVAILABLE')
  }, 60_000)

  it('finds and pins the manifest the install script left beside the install', async () => {
    const appDir = join(root, 'node_modules', '@digicap', 'pi-node')
    const found = await installedRelease(appDir)
    expect(found).toEqual({ manifest: manifestFile, key: rawKey, root })
    expect(await pinRelease({}, appDir)).toEqual(found)
    expect(await installedRelease(join(dir, 'workspace', 'apps', 'pi-node'))).toBeUndefined()
  })
})
