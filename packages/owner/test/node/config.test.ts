import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  applyOwnerNodeEnv,
  confirmationsFor,
  finalityFor,
  loadOwnerNodeConfig,
  type OwnerNodeConfig,
  saveOwnerNodeConfig,
  sealerChoiceOf,
  sealerConfigOf,
} from '../../src/node/index.ts'

const base: OwnerNodeConfig = {
  version: 1,
  dataDir: '/x',
  rpcUrl: 'http://127.0.0.1:8545',
  chainId: 31337,
  contracts: {
    capsuleRegistry: `0x${'11'.repeat(20)}`,
    nodeRegistry: `0x${'22'.repeat(20)}`,
    accessController: `0x${'33'.repeat(20)}`,
  },
  sealer: { kind: 'tpm2', tcti: 'device:/dev/tpmrm0' },
  listen: ['/ip4/0.0.0.0/tcp/4001'],
  bootstrap: [],
}

describe('config', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'owner-node-config-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('round-trips through config.json and applies env overrides', async () => {
    await saveOwnerNodeConfig({ ...base, dataDir: dir })
    const c = await loadOwnerNodeConfig(dir, {
      DIGICAP_RPC_URL: 'http://10.0.0.1:8545',
      DIGICAP_TCTI: 'swtpm:host=127.0.0.1,port=2321',
      DIGICAP_LISTEN: '/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/tcp/1',
    })
    expect(c.rpcUrl).toBe('http://10.0.0.1:8545')
    expect(c.sealer).toEqual({ kind: 'tpm2', tcti: 'swtpm:host=127.0.0.1,port=2321' })
    expect(c.listen).toHaveLength(2)
    expect(c.dataDir).toBe(dir)
  })

  it('reads the keyguard fields and their env overrides; confirmations default by chain', async () => {
    const full: OwnerNodeConfig = {
      ...base,
      dataDir: join(dir, 'kg'),
      announce: ['/ip4/203.0.113.7/tcp/4001'],
      rpcUrls: ['http://10.0.0.2:8545'],
      quorum: 2,
      startBlock: 12,
      keyguard: { confirmations: 1, fastPath: false, pollIntervalMs: 500 },
    }
    await saveOwnerNodeConfig(full)
    expect(await loadOwnerNodeConfig(full.dataDir)).toEqual(full)
    const env = applyOwnerNodeEnv(full, {
      DIGICAP_ANNOUNCE: '/dns4/pi.example/tcp/4001,/ip4/203.0.113.8/tcp/4001',
      DIGICAP_RPC_URLS: 'http://a:1,http://b:2',
      DIGICAP_CONFIRMATIONS: '4',
    })
    expect(env.announce).toEqual(['/dns4/pi.example/tcp/4001', '/ip4/203.0.113.8/tcp/4001'])
    expect(env.rpcUrls).toEqual(['http://a:1', 'http://b:2'])
    expect(env.keyguard).toEqual({ confirmations: 4, fastPath: false, pollIntervalMs: 500 })
    expect(() => applyOwnerNodeEnv(base, { DIGICAP_CONFIRMATIONS: '-1' })).toThrow(
      expect.objectContaining({ code: 'CONFIG' }),
    )
    expect(confirmationsFor(base)).toBe(0)
    expect(confirmationsFor({ ...base, chainId: 8453 })).toBe(3)
    expect(confirmationsFor({ ...base, chainId: 8453, keyguard: { confirmations: 6 } })).toBe(6)
  })

  it('finality: latest on every chain (finalized is opt-in: it can outlast a grant window); the file or DIGICAP_FINALITY overrides (keyguard ADR 0082)', () => {
    expect(finalityFor(base)).toBe('latest')
    expect(finalityFor({ ...base, chainId: 1 })).toBe('latest')
    expect(finalityFor({ ...base, chainId: 1, keyguard: { finality: 'finalized' } })).toBe(
      'finalized',
    )
    expect(finalityFor({ ...base, chainId: 137, keyguard: { finality: 'latest' } })).toBe('latest')
    const env = applyOwnerNodeEnv({ ...base, chainId: 1 }, { DIGICAP_FINALITY: 'safe' })
    expect(env.keyguard).toEqual({ finality: 'safe' })
    expect(finalityFor(env)).toBe('safe')
    expect(() => applyOwnerNodeEnv(base, { DIGICAP_FINALITY: 'soon' })).toThrow(
      expect.objectContaining({ code: 'CONFIG' }),
    )
  })

  it('names the committee hub (file or DIGICAP_ATTESTATION_HUB) and refuses a half section', async () => {
    const hub = `0x${'44'.repeat(20)}`
    const inFile: OwnerNodeConfig = {
      ...base,
      dataDir: join(dir, 'committee'),
      committee: { attestationHub: hub, verdictPollMs: 250 },
    }
    await saveOwnerNodeConfig(inFile)
    expect((await loadOwnerNodeConfig(inFile.dataDir)).committee).toEqual(inFile.committee)
    // off unless named: no section, no gate
    expect(applyOwnerNodeEnv(base, {}).committee).toBeUndefined()
    const env = applyOwnerNodeEnv(base, {
      DIGICAP_ATTESTATION_HUB: hub,
      DIGICAP_COMMITTEE_POLL_MS: '300',
    })
    expect(env.committee).toEqual({ attestationHub: hub, verdictPollMs: 300 })
    for (const [patch, field] of [
      [{ DIGICAP_ATTESTATION_HUB: '0x12' }, 'committee.attestationHub'],
      [{ DIGICAP_ATTESTATION_HUB: hub, DIGICAP_COMMITTEE_POLL_MS: '5' }, 'committee.verdictPollMs'],
      // a poll period without a hub would turn on nothing: refused, not ignored
      [{ DIGICAP_COMMITTEE_POLL_MS: '300' }, 'committee.attestationHub'],
    ] as const) {
      expect(() => applyOwnerNodeEnv(base, patch)).toThrow(
        expect.objectContaining({
          code: 'CONFIG',
          details: expect.objectContaining({ field }),
        }),
      )
    }
  })

  it('switches sealers only as allowed', () => {
    const soft = applyOwnerNodeEnv(base, { DIGICAP_SEALER: 'software' })
    expect(soft.sealer).toMatchObject({ kind: 'software', allowInsecure: false })
    const allowed = applyOwnerNodeEnv(base, {
      DIGICAP_SEALER: 'software',
      DIGICAP_ALLOW_INSECURE_SEALER: '1',
    })
    expect(allowed.sealer).toMatchObject({ kind: 'software', allowInsecure: true })
    expect(applyOwnerNodeEnv(base, { DIGICAP_ALLOW_UNENCRYPTED_TPM: '1' }).sealer).toMatchObject({
      kind: 'tpm2',
      allowUnencryptedTransport: true,
    })
    expect(applyOwnerNodeEnv(base, {}).sealer).not.toHaveProperty('allowUnencryptedTransport')
    expect(() => applyOwnerNodeEnv(base, { DIGICAP_SEALER: 'hsm' })).toThrow(
      expect.objectContaining({ code: 'CONFIG' }),
    )
  })

  it('fails with NOT_INITIALISED for a missing file and CONFIG for a malformed one', async () => {
    await expect(loadOwnerNodeConfig(join(dir, 'none'))).rejects.toMatchObject({
      code: 'NOT_INITIALISED',
    })
    const bad = join(dir, 'bad')
    await saveOwnerNodeConfig({ ...base, dataDir: bad })
    await writeFile(join(bad, 'config.json'), '{not json')
    await expect(loadOwnerNodeConfig(bad)).rejects.toMatchObject({ code: 'CONFIG' })
    for (const broken of [
      { ...base, version: 2 },
      { ...base, rpcUrl: 'ftp://x' },
      { ...base, chainId: -1 },
      { ...base, contracts: { ...base.contracts, nodeRegistry: '0x12' } },
      { ...base, sealer: { kind: 'hsm' } },
      { ...base, listen: [1] },
      { ...base, announce: '/ip4/1.2.3.4/tcp/4001' },
      { ...base, rpcUrls: [7] },
      { ...base, quorum: 0 },
      { ...base, startBlock: -1 },
      { ...base, keyguard: null },
      { ...base, keyguard: { confirmations: 1.5 } },
      { ...base, keyguard: { finality: 'final' } },
      { ...base, keyguard: { fastPath: 'yes' } },
      { ...base, keyguard: { pollIntervalMs: 1 } },
      { ...base, sealer: { ...base.sealer, pcrs: [] } },
      { ...base, sealer: { ...base.sealer, pcrs: [7, 24] } },
      { ...base, sealer: { ...base.sealer, pcrs: '0-7' } },
      { ...base, release: { pcr: 16 } },
      { ...base, release: { manifest: 7 } },
    ]) {
      await writeFile(join(bad, 'config.json'), JSON.stringify(broken))
      await expect(loadOwnerNodeConfig(bad)).rejects.toMatchObject({ code: 'CONFIG' })
    }
  })

  it('picks the sealer a user asks for; the software one only when allowed', () => {
    const dir = '/data'
    expect(sealerConfigOf({ allowInsecure: false }, dir)).toEqual(base.sealer)
    expect(sealerConfigOf({ tcti: 'swtpm:port=1', allowInsecure: false }, dir)).toEqual({
      kind: 'tpm2',
      tcti: 'swtpm:port=1',
    })
    expect(sealerConfigOf({ allowInsecure: false }, dir, base.sealer)).toBeUndefined()
    expect(sealerConfigOf({ kind: 'software', allowInsecure: true }, dir)).toEqual({
      kind: 'software',
      keyFile: '/data/sealer.pem',
      allowInsecure: true,
    })
    expect(() => sealerConfigOf({ kind: 'software', allowInsecure: false }, dir)).toThrow(
      expect.objectContaining({ code: 'USAGE' }),
    )
    expect(() => sealerConfigOf({ kind: 'hsm', allowInsecure: true }, dir)).toThrow(
      expect.objectContaining({ code: 'USAGE' }),
    )
  })

  it('reads the sealer choice from the flags, then the environment unless a config is kept', () => {
    const env = { DIGICAP_SEALER: 'software', DIGICAP_TCTI: 'swtpm:port=3' }
    const none = { 'allow-insecure-sealer': false }
    expect(sealerChoiceOf(none, env)).toEqual({
      kind: 'software',
      tcti: 'swtpm:port=3',
      allowInsecure: false,
    })
    expect(sealerChoiceOf(none, env, true)).toEqual({
      kind: undefined,
      tcti: undefined,
      allowInsecure: false,
    })
    expect(
      sealerChoiceOf({ ...none, sealer: 'tpm2', tcti: 'device:/dev/tpm0' }, env, true),
    ).toEqual({
      kind: 'tpm2',
      tcti: 'device:/dev/tpm0',
      allowInsecure: false,
    })
    expect(sealerChoiceOf(none, { DIGICAP_ALLOW_INSECURE_SEALER: '1' }, true).allowInsecure).toBe(
      true,
    )
    expect(sealerChoiceOf({ 'allow-insecure-sealer': true }, {}).allowInsecure).toBe(true)
  })

  it('--allow-unverified-tpm (or DIGICAP_ALLOW_UNVERIFIED_TPM=1) reaches the tpm2 sealer config (ADR 0097)', async () => {
    const none = { 'allow-insecure-sealer': false }
    const flag = sealerChoiceOf({ ...none, 'allow-unverified-tpm': true }, {})
    expect(flag.allowUnverifiedTpm).toBe(true)
    expect(
      sealerChoiceOf(none, { DIGICAP_ALLOW_UNVERIFIED_TPM: '1' }, true).allowUnverifiedTpm,
    ).toBe(true)
    expect(sealerConfigOf(flag, '/data')).toEqual({
      kind: 'tpm2',
      tcti: 'device:/dev/tpmrm0',
      allowUnverifiedTpm: true,
    })
    // recover with the config in place and only the flag: that config, with it
    const kept = { kind: 'tpm2' as const, tcti: 'device:/dev/tpmrm0', handle: 0x81000011 }
    expect(sealerConfigOf(flag, '/data', kept)).toEqual({ ...kept, allowUnverifiedTpm: true })
    expect(sealerConfigOf({ allowInsecure: false }, '/data', kept)).toBeUndefined()
    const saved = { ...base, dataDir: join(dir, 'unverified') }
    await saveOwnerNodeConfig(saved)
    const loaded = await loadOwnerNodeConfig(saved.dataDir, { DIGICAP_ALLOW_UNVERIFIED_TPM: '1' })
    expect(loaded.sealer).toMatchObject({ kind: 'tpm2', allowUnverifiedTpm: true })
  })

  it('keeps a PCR policy (init --pcr-policy) and the pinned release, with env overrides', async () => {
    const bound = sealerConfigOf({ allowInsecure: false, pcrs: [0, 7, 15] }, '/data')
    expect(bound).toEqual({ kind: 'tpm2', tcti: 'device:/dev/tpmrm0', pcrs: [0, 7, 15] })
    // recover onto a new TPM keeps the binding
    expect(sealerConfigOf({ tcti: 'swtpm:port=2', allowInsecure: false }, '/data', bound)).toEqual({
      kind: 'tpm2',
      tcti: 'swtpm:port=2',
      pcrs: [0, 7, 15],
    })
    expect(() =>
      sealerConfigOf({ kind: 'software', allowInsecure: true, pcrs: [7] }, '/data'),
    ).toThrow(expect.objectContaining({ code: 'USAGE' }))
    const pinned = {
      ...base,
      dataDir: join(dir, 'pinned'),
      sealer: { kind: 'tpm2' as const, tcti: 'device:/dev/tpmrm0', pcrs: [7, 15] },
      release: { manifest: '/usr/lib/pi-node.release.json', key: 'ab'.repeat(32), pcr: 14 },
    }
    await saveOwnerNodeConfig(pinned)
    expect(await loadOwnerNodeConfig(pinned.dataDir)).toEqual(pinned)
    const env = applyOwnerNodeEnv(pinned, {
      DIGICAP_RELEASE_MANIFEST: '/etc/digicap/release.json',
      DIGICAP_RELEASE_PCR: '13',
    })
    expect(env.release).toEqual({
      ...pinned.release,
      manifest: '/etc/digicap/release.json',
      pcr: 13,
    })
    expect(() => applyOwnerNodeEnv(pinned, { DIGICAP_RELEASE_PCR: '23' })).toThrow(
      expect.objectContaining({ code: 'CONFIG' }),
    )
  })
})
