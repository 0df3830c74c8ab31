/**
 * `pi-node init` proves its TPM key sits in a genuine TPM before pinning it (ADR 0097), and
 * `status` says how it was checked. Real anvil, a real swtpm manufactured with an EK
 * certificate (its maker's CA is `DIGICAP_EK_ROOTS`): init activates a credential against the
 * certified EK and the record names the certificate; with `--allow-unverified-tpm` the key is
 * pinned without the check, recorded so, and `status` prints UNVERIFIED TPM.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from './helpers/cli.ts'

let anvil: Anvil
let tpm: Swtpm
let dir: string
let roots: string

beforeAll(async () => {
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm({ ekCertificate: true })])
  dir = await mkdtemp(join(tmpdir(), 'pi-node-tpm-identity-'))
  roots = join(dir, 'ek-roots.pem')
  await writeFile(roots, tpm.ekRoots!)
}, 120_000)

afterAll(async () => {
  await Promise.all([anvil?.stop(), tpm?.stop()])
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function init(name: string, extra: string[], env: Record<string, string> = {}) {
  const dataDir = join(dir, name)
  const base = { DIGICAP_DATA_DIR: dataDir, DIGICAP_RPC_URL: anvil.rpcUrl, ...env }
  const r = await runCli(
    ['init', '--deploy', '--tcti', tpm.tcti, '--no-pcr-policy', ...extra, '--json'],
    base,
  )
  expect(r.code, r.stderr).toBe(0)
  const record = JSON.parse(await readFile(join(dataDir, 'tpm2-key.json'), 'utf8'))
  const status = await runCli(['status'], base)
  expect(status.code, status.stderr).toBe(0)
  return { record, status: status.stdout }
}

describe('pi-node init checks its TPM before pinning the key (swtpm with an EK certificate)', () => {
  it('with the maker’s roots: activated against the EK certificate, shown by status', async () => {
    const { record, status } = await init('verified', [], { DIGICAP_EK_ROOTS: roots })
    expect(record.ekActivation).toMatchObject({ verified: true })
    expect(record.ekActivation.certificateSha256).toMatch(/^[0-9a-f]{64}$/)
    expect(status).toMatch(
      new RegExp(
        `TPM {9}EK-activated: EK certificate sha256:${record.ekActivation.certificateSha256.slice(0, 16)}… issued by `,
      ),
    )
  }, 120_000)

  it('--allow-unverified-tpm: pinned without the check, recorded, status prints UNVERIFIED TPM', async () => {
    const { record, status } = await init('unverified', ['--allow-unverified-tpm'])
    expect(record.ekActivation).toEqual({ verified: false, why: 'allowed' })
    expect(status).toContain(
      'TPM         UNVERIFIED TPM: pinned without credential activation (--allow-unverified-tpm)',
    )
  }, 120_000)
})
