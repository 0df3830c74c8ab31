/**
 * `pi-node init --force` over a node whose TPM wrapping key is PCR-bound (real anvil, real
 * swtpm). The old key's policy names the OLD owner's authorizing key (derived from the old
 * words), which the new words cannot sign for: before the fix, re-init kept that key and ended
 * in `TPM_POLICY` `wrong-words`. Now --force replaces the key and the new words authorize it;
 * without --force, a fresh folder over such a key is refused with a typed error saying what
 * to do.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Doc, runCli, runJson } from './helpers/cli.ts'

let anvil: Anvil
let tpm: Swtpm
let dir: string
let env: Record<string, string>

const wordsOf = (stderr: string) =>
  [...stderr.matchAll(/^\s*\d+\. ([a-z]+)$/gm)].map((m) => m[1]).join(' ')
const INIT = ['init', '--deploy', '--pcr-policy', '7', '--listen', '/ip4/127.0.0.1/tcp/0']

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-node-reinit-'))
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
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

describe('init --force over a PCR-bound key (swtpm)', () => {
  it('replaces the key; the new words authorize it, the old ones no longer do', async () => {
    const first = await runCli([...INIT, '--json'], env)
    expect(first.stderr).not.toContain('error[')
    expect(first.code).toBe(0)
    const oldWords = wordsOf(first.stderr)
    const oldKey = JSON.parse(
      await readFile(join(env.DIGICAP_DATA_DIR as string, 'tpm2-key.json'), 'utf8'),
    )

    const again = await runCli([...INIT, '--force', '--json'], env)
    expect(again.stderr).not.toContain('error[')
    expect(again.code).toBe(0)
    const newWords = wordsOf(again.stderr)
    expect(newWords.split(' ')).toHaveLength(24)
    expect(newWords).not.toBe(oldWords)
    const newKey = JSON.parse(
      await readFile(join(env.DIGICAP_DATA_DIR as string, 'tpm2-key.json'), 'utf8'),
    )
    expect(newKey.keyId).not.toBe(oldKey.keyId)
    expect(newKey.policy.authKey).not.toEqual(oldKey.policy.authKey)

    const shown = await runJson(['key-policy', 'show', '--json'], env)
    expect(shown.keyPolicy).toMatchObject({ pcrBound: true, pcrs: [7], approved: true })
    const authorized = await runCli(['key-policy', 'authorize', '--json'], env, newWords)
    expect(authorized.stderr).not.toContain('error[')
    expect(authorized.code).toBe(0)
    const stale = await runCli(['key-policy', 'authorize'], env, oldWords)
    expect(stale.code).toBe(1)
    expect(stale.stderr).toContain('error[TPM_POLICY]')
    expect(stale.stderr).toContain('not the words of this node')
    // The owner file opens through the new key's policy (status reads the sealer's key).
    const status = await runJson(['status', '--json'], env)
    expect(status.code).toBe(0)
    expect(status.status.sealer).toMatchObject({ kind: 'tpm2', keyId: newKey.keyId })
  }, 120_000)

  it('a fresh folder over a key bound to other words is refused, saying what to do', async () => {
    const other = { ...env, DIGICAP_DATA_DIR: join(dir, 'other') }
    const r = await runCli([...INIT, '--json'], other)
    expect(r.code).toBe(1)
    const err = JSON.parse(r.stdout) as Doc
    expect(err.error).toMatchObject({ code: 'TPM_POLICY', details: { reason: 'unfit-key' } })
    expect(err.error.message).toContain('does not fit')
    expect(err.error.hint).toContain('--force')
  }, 60_000)
})
