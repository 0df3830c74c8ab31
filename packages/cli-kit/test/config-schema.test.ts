import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { CHAIN_CONFIG_FIELDS, defineConfig } from '../src/index.ts'

interface Toy {
  rpcUrl: string
  listen: string[]
  fast: boolean
  keyguard?: { confirmations?: number }
  extra?: unknown
}

const toy = defineConfig<Toy>('toy-node', {
  rpcUrl: { type: 'string', env: 'TOY_RPC_URL', flag: 'rpc-url', pattern: /^https?:\/\// },
  listen: { type: 'list', env: 'TOY_LISTEN', flag: 'listen', default: ['/ip4/0.0.0.0/tcp/1'] },
  fast: { type: 'boolean', env: 'TOY_FAST', flag: 'fast', default: false },
  'keyguard.confirmations': { type: 'number', env: 'TOY_CONF', optional: true, min: 0 },
})

const dir = mkdtempSync(join(tmpdir(), 'cli-kit-schema-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('defineConfig', () => {
  it('takes the flag, else the env, else the file, else the default', () => {
    const file = { rpcUrl: 'http://file', listen: ['/f'], keyguard: { confirmations: 2 } }
    expect(toy.resolve({ file })).toEqual({ ...file, fast: false })
    const env = {
      TOY_RPC_URL: 'http://env',
      TOY_LISTEN: ' /a , ,/b ',
      TOY_FAST: '1',
      TOY_CONF: '0',
    }
    expect(toy.resolve({ file, env })).toEqual({
      rpcUrl: 'http://env',
      listen: ['/a', '/b'],
      fast: true,
      keyguard: { confirmations: 0 },
    })
    const flags = { 'rpc-url': 'http://flag', listen: ['/c'], fast: false }
    // A switch that is off is "not given": the env's true stands.
    expect(toy.resolve({ file, env, flags })).toMatchObject({
      rpcUrl: 'http://flag',
      listen: ['/c'],
      fast: true,
    })
    expect(toy.resolve({ file: { rpcUrl: 'http://x' } })).toEqual({
      rpcUrl: 'http://x',
      listen: ['/ip4/0.0.0.0/tcp/1'],
      fast: false,
    })
  })

  it('keeps undeclared keys and does not change the file object', () => {
    const file = { rpcUrl: 'http://x', extra: { kind: 'tpm2' }, keyguard: { other: 1 } }
    const before = structuredClone(file)
    const out = toy.resolve({ file, env: { TOY_CONF: '5' } })
    expect(out).toEqual({
      ...file,
      listen: ['/ip4/0.0.0.0/tcp/1'],
      fast: false,
      keyguard: { other: 1, confirmations: 5 },
    })
    expect(file).toEqual(before)
    expect(toy.resolve({ file, env: { TOY_RPC_URL: '' } }).rpcUrl).toBe('http://x')
  })

  it('names the field and the source of a bad value', () => {
    const bad = (sources: Parameters<typeof toy.resolve>[0]) => {
      try {
        toy.resolve(sources)
      } catch (err) {
        return err
      }
      throw new Error('no error')
    }
    expect(bad({ file: {}, fileName: 'c.json' })).toMatchObject({
      code: 'CONFIG',
      details: { field: 'rpcUrl', file: 'c.json' },
      hint: expect.stringContaining('toy-node init --force'),
    })
    for (const [file, field] of [
      [{ rpcUrl: 'ftp://x' }, 'rpcUrl'],
      [{ rpcUrl: 7 }, 'rpcUrl'],
      [{ rpcUrl: 'http://x', listen: '/a' }, 'listen'],
      [{ rpcUrl: 'http://x', listen: [1] }, 'listen'],
      [{ rpcUrl: 'http://x', fast: 'yes' }, 'fast'],
      [{ rpcUrl: 'http://x', keyguard: null }, 'keyguard'],
      [{ rpcUrl: 'http://x', keyguard: [] }, 'keyguard'],
      [{ rpcUrl: 'http://x', keyguard: { confirmations: 1.5 } }, 'keyguard.confirmations'],
      [{ rpcUrl: 'http://x', keyguard: { confirmations: -1 } }, 'keyguard.confirmations'],
    ] as const) {
      expect(bad({ file, fileName: 'c.json' }), JSON.stringify(file)).toMatchObject({
        code: 'CONFIG',
        details: { field, file: 'c.json' },
      })
    }
    const file = { rpcUrl: 'http://x' }
    for (const [env, name, field] of [
      [{ TOY_CONF: '-1' }, 'TOY_CONF', 'keyguard.confirmations'],
      [{ TOY_CONF: '1e3' }, 'TOY_CONF', 'keyguard.confirmations'],
      [{ TOY_FAST: 'yes' }, 'TOY_FAST', 'fast'],
      [{ TOY_RPC_URL: 'file:///etc/passwd' }, 'TOY_RPC_URL', 'rpcUrl'],
    ] as const) {
      expect(bad({ file, env }), name).toMatchObject({
        code: 'CONFIG',
        shortMessage: `${name} is not a valid ${field}`,
        details: { field, env: name },
        hint: `Fix or unset ${name}.`,
      })
    }
    expect(bad({ file, flags: { 'rpc-url': 'nope' } })).toMatchObject({
      shortMessage: '--rpc-url is not a valid rpcUrl',
      details: { field: 'rpcUrl', flag: 'rpc-url', value: 'nope' },
    })
    for (const notObject of [null, [], 'text', 3]) {
      expect(bad({ file: notObject }), String(notObject)).toMatchObject({ code: 'CONFIG' })
    }
  })

  it('loads a file: missing is NOT_INITIALISED, and the shared chain fields are checked', async () => {
    const chain = defineConfig<{ chainId: number }>('toy-node', CHAIN_CONFIG_FIELDS)
    const file = join(dir, 'config.json')
    await expect(chain.load(file, dir)).rejects.toMatchObject({ code: 'NOT_INITIALISED' })
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
    writeFileSync(file, JSON.stringify(good))
    expect(await chain.load(file, dir, { env: { DIGICAP_RPC_URL: 'ws://h:1' } })).toEqual({
      ...good,
      rpcUrl: 'ws://h:1',
    })
    writeFileSync(file, JSON.stringify({ ...good, version: 2 }))
    await expect(chain.load(file, dir)).rejects.toMatchObject({
      details: { field: 'version', file },
    })
    writeFileSync(file, JSON.stringify({ ...good, chainId: 0 }))
    await expect(chain.load(file, dir)).rejects.toMatchObject({
      details: { field: 'chainId', file },
    })
  })
})
