import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { checkChainConfigFields, configFieldError, readConfigJson } from '../src/index.ts'

const dir = mkdtempSync(join(tmpdir(), 'cli-kit-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const good = {
  version: 1,
  dataDir: dir,
  rpcUrl: 'http://127.0.0.1:8545',
  chainId: 31337,
  contracts: {
    capsuleRegistry: `0x${'1'.repeat(40)}`,
    nodeRegistry: `0x${'2'.repeat(40)}`,
    accessController: `0x${'3'.repeat(40)}`,
  },
}

describe('config helpers', () => {
  it('reads JSON; a missing file is NOT_INITIALISED, junk is CONFIG', async () => {
    const file = join(dir, 'config.json')
    await expect(readConfigJson(file, dir, 'pi-node')).rejects.toMatchObject({
      code: 'NOT_INITIALISED',
      hint: expect.stringContaining('pi-node init'),
    })
    writeFileSync(file, '{"version": 1')
    await expect(readConfigJson(file, dir, 'pi-node')).rejects.toMatchObject({ code: 'CONFIG' })
    writeFileSync(file, JSON.stringify(good))
    expect(await readConfigJson(file, dir, 'pi-node')).toEqual(good)
    await expect(readConfigJson(dir, dir, 'pi-node')).rejects.toMatchObject({ code: 'CONFIG' })
  })

  it('checks the shared fields and names the bad one', () => {
    const bad = configFieldError('executor-node')
    expect(() => checkChainConfigFields(good, 'f', bad)).not.toThrow()
    const cases: [string, unknown][] = [
      ['version', { ...good, version: 2 }],
      ['version', null],
      ['dataDir', { ...good, dataDir: 1 }],
      ['rpcUrl', { ...good, rpcUrl: 'ftp://x' }],
      ['chainId', { ...good, chainId: 0 }],
      ['chainId', { ...good, chainId: 1.5 }],
      [
        'contracts.nodeRegistry',
        { ...good, contracts: { ...good.contracts, nodeRegistry: '0x1' } },
      ],
      ['contracts.capsuleRegistry', { ...good, contracts: undefined }],
    ]
    for (const [field, raw] of cases) {
      expect(() => checkChainConfigFields(raw, 'f', bad), field).toThrow(
        expect.objectContaining({
          code: 'CONFIG',
          details: { field, file: 'f' },
          hint: expect.stringContaining('executor-node init --force'),
        }),
      )
    }
  })
})
