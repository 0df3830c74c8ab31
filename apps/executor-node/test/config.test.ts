import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { positiveEther } from '@digicap/cli-kit'
import { NODE_ROLES } from '@digicap/executor/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  applyEnv,
  checkConfig,
  type ExecutorNodeConfig,
  loadConfig,
  parseRoles,
  readReceiverKey,
  resolveDataDir,
} from '../src/index.ts'

const good: ExecutorNodeConfig = {
  version: 1,
  dataDir: '/x',
  rpcUrl: 'http://127.0.0.1:8545',
  chainId: 31337,
  contracts: {
    capsuleRegistry: `0x${'1'.repeat(40)}`,
    nodeRegistry: `0x${'2'.repeat(40)}`,
    accessController: `0x${'3'.repeat(40)}`,
  },
  listen: ['/ip4/127.0.0.1/tcp/0'],
  bootstrap: [],
  keyguardAddrs: [],
  fast: false,
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'exnode-config-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('config', () => {
  it('accepts a good config and names the malformed field otherwise', () => {
    expect(checkConfig(good, 'f')).toEqual(good)
    const quorate = { ...good, rpcUrls: ['http://10.0.0.2:8545', 'https://rpc.example'], quorum: 2 }
    expect(checkConfig(quorate, 'f')).toEqual(quorate)
    const cases: [Record<string, unknown>, string][] = [
      [{ version: 2 }, 'version'],
      [{ rpcUrl: 'ftp://x' }, 'rpcUrl'],
      [{ chainId: -1 }, 'chainId'],
      [{ contracts: { ...good.contracts, nodeRegistry: '0x12' } }, 'contracts.nodeRegistry'],
      [{ keyguardAddrs: [1] }, 'keyguardAddrs'],
      [{ fast: 'yes' }, 'fast'],
      [{ rpcUrls: ['ftp://x'] }, 'rpcUrls'],
      [{ rpcUrls: 'http://x' }, 'rpcUrls'],
      [{ quorum: 2 }, 'quorum'], // one RPC cannot make a quorum of two
      [{ rpcUrls: ['http://10.0.0.2:8545'], quorum: 0 }, 'quorum'],
    ]
    for (const [patch, field] of cases) {
      let err: { code?: string; details?: Record<string, unknown> } | undefined
      try {
        checkConfig({ ...good, ...patch }, 'f')
      } catch (e) {
        err = e as typeof err
      }
      expect(err?.code).toBe('CONFIG')
      expect(err?.details?.field).toBe(field)
    }
  })

  it('applies DIGICAP_* overrides and resolves the data dir', () => {
    const c = applyEnv(good, {
      DIGICAP_RPC_URL: 'http://10.0.0.1:8545',
      DIGICAP_KEYGUARD_ADDRS: '/ip4/1.2.3.4/tcp/1, /ip4/1.2.3.5/tcp/2',
      DIGICAP_FAST: '1',
      DIGICAP_RPC_URLS: 'http://10.0.0.2:8545, http://10.0.0.3:8545',
    })
    expect(c.rpcUrl).toBe('http://10.0.0.1:8545')
    expect(c.rpcUrls).toEqual(['http://10.0.0.2:8545', 'http://10.0.0.3:8545'])
    expect(c.keyguardAddrs).toEqual(['/ip4/1.2.3.4/tcp/1', '/ip4/1.2.3.5/tcp/2'])
    expect(c.fast).toBe(true)
    // A bad variable names itself; it never falls back to the file's value silently.
    for (const [name, value] of [
      ['DIGICAP_TCTI', 'mssim:host=127.0.0.1'],
      ['DIGICAP_FAST', 'yes'],
      ['DIGICAP_RPC_URLS', 'ftp://x'],
    ] as const) {
      expect(() => applyEnv(good, { [name]: value })).toThrow(
        expect.objectContaining({
          code: 'CONFIG',
          details: expect.objectContaining({ env: name }),
        }),
      )
    }
    // Fewer RPCs from the environment than the file's quorum needs: refused, not outvoted.
    const quorate = { ...good, rpcUrls: ['http://10.0.0.2:8545'], quorum: 2 }
    expect(() => applyEnv(quorate, { DIGICAP_RPC_URLS: ',' })).toThrow(
      expect.objectContaining({
        code: 'CONFIG',
        details: expect.objectContaining({ field: 'quorum' }),
      }),
    )
    expect(resolveDataDir(undefined, { DIGICAP_DATA_DIR: '/tmp/a' })).toBe('/tmp/a')
    expect(resolveDataDir(undefined, {})).toMatch(/\.digicap\/executor-node$/)
  })

  it('reads the OCI state directory from the file or DIGICAP_OCI_STATE_DIR (ADR 0075)', () => {
    const oci = { ...good, oci: true, ociStateDir: '/run/digicap-oci-b' }
    expect(checkConfig(oci, 'f')).toEqual(oci)
    const c = applyEnv(good, { DIGICAP_OCI: '1', DIGICAP_OCI_STATE_DIR: '/srv/oci' })
    expect(c.oci).toBe(true)
    expect(c.ociStateDir).toBe('/srv/oci')
    expect(applyEnv(good, {}).ociStateDir).toBeUndefined()
  })

  it('reads the committee hold (challengers, grace) from the file or DIGICAP_ATTEST_*', () => {
    const held = { ...good, attestHoldMs: 20_000, attestHold: { challengers: 4, graceMs: 3000 } }
    expect(checkConfig(held, 'f')).toEqual(held)
    const c = applyEnv(good, {
      DIGICAP_ATTEST_HOLD_MS: '15000',
      DIGICAP_ATTEST_CHALLENGERS: '4',
      DIGICAP_ATTEST_GRACE_MS: '2500',
    })
    expect(c.attestHoldMs).toBe(15_000)
    expect(c.attestHold).toEqual({ challengers: 4, graceMs: 2500 })
    expect(applyEnv(good, {}).attestHold).toBeUndefined()
    for (const [name, value] of [
      ['DIGICAP_ATTEST_CHALLENGERS', '0'],
      ['DIGICAP_ATTEST_CHALLENGERS', 'four'],
      ['DIGICAP_ATTEST_GRACE_MS', '-5'],
    ] as const) {
      expect(() => applyEnv(good, { [name]: value })).toThrow(
        expect.objectContaining({
          code: 'CONFIG',
          details: expect.objectContaining({ env: name }),
        }),
      )
    }
    expect(() => checkConfig({ ...good, attestHold: { challengers: 1.5 } }, 'f')).toThrow(
      expect.objectContaining({
        details: expect.objectContaining({ field: 'attestHold.challengers' }),
      }),
    )
  })

  it('loadConfig: NOT_INITIALISED without a file, CONFIG for non-JSON', async () => {
    await expect(loadConfig(join(dir, 'none'))).rejects.toMatchObject({ code: 'NOT_INITIALISED' })
    await writeFile(join(dir, 'config.json'), '{nope')
    await expect(loadConfig(dir)).rejects.toMatchObject({ code: 'CONFIG' })
    await writeFile(join(dir, 'config.json'), JSON.stringify(good))
    expect((await loadConfig(dir, { DIGICAP_FAST: '1' })).fast).toBe(true)
  })

  it('parses roles, stake and receiver key files with typed errors', async () => {
    expect(parseRoles('executor,verifier', NODE_ROLES)).toBe(3)
    expect(() => parseRoles('toString', NODE_ROLES)).toThrow(
      expect.objectContaining({ code: 'USAGE' }),
    )
    expect(() => parseRoles('king', NODE_ROLES)).toThrow(expect.objectContaining({ code: 'USAGE' }))
    expect(positiveEther('0.5', 'stake')).toBe(500000000000000000n)
    expect(() => positiveEther('-1', 'stake')).toThrow(expect.objectContaining({ code: 'USAGE' }))
    expect(() => positiveEther('lots', 'stake')).toThrow(expect.objectContaining({ code: 'USAGE' }))
    const key = join(dir, 'r.key')
    await writeFile(key, `${'ab'.repeat(32)}\n`)
    expect((await readReceiverKey(key)).length).toBe(32)
    await writeFile(key, 'short')
    await expect(readReceiverKey(key)).rejects.toMatchObject({ code: 'CONFIG' })
  })
})
