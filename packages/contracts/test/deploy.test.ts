import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Interface } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Anvil, resolveAnvilBinary, startAnvil } from '../src/anvil.ts'
import { connectDigicap, deployDigicap, deploymentFile, readDeployment } from '../src/deploy.ts'
import { AnvilError, ContractRevertError, DeploymentError } from '../src/errors.ts'
import { accessControllerAbi } from '../src/generated/artifacts.ts'
import { Reason, reasonName } from '../src/reasons.ts'
import { decodeRevert, withRevertDecoding } from '../src/revert.ts'

let anvil: Anvil
let dir: string
beforeAll(async () => {
  anvil = await startAnvil({ accounts: 3 })
  dir = mkdtempSync(join(tmpdir(), 'digicap-deploy-'))
})
afterAll(async () => {
  await anvil?.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function expectTyped<T extends Error>(
  p: Promise<unknown> | (() => unknown),
  cls: new (...a: never[]) => T,
  code: string,
) {
  let err: unknown
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    err = e
  }
  expect(err).toBeInstanceOf(cls)
  expect((err as { code: string }).code).toBe(code)
}

describe('startAnvil', () => {
  it('answers on 127.0.0.1 with anvil default accounts as signers', async () => {
    expect(anvil.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(anvil.chainId).toBe(31337n)
    const fromNode = (await anvil.provider.send('eth_accounts', [])) as string[]
    expect(anvil.accounts.map((a) => a.toLowerCase())).toEqual(
      fromNode.slice(0, 3).map((a) => a.toLowerCase()),
    )
    expect(anvil.signers[0]!.address).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266')
    const before = await anvil.provider.getBlockNumber()
    const snap = await anvil.snapshot()
    await (await anvil.signers[0]!.sendTransaction({ to: anvil.accounts[1]!, value: 1n })).wait()
    await (await anvil.signers[0]!.sendTransaction({ to: anvil.accounts[1]!, value: 1n })).wait()
    expect(await anvil.provider.getBlockNumber()).toBe(before + 2)
    await anvil.revert(snap)
    expect(await anvil.provider.getBlockNumber()).toBe(before)
    await expectTyped(anvil.revert('0x99'), AnvilError, 'ANVIL')
  })

  it('stops the anvil process it started', async () => {
    const other = await startAnvil({ accounts: 1, chainId: 1337 })
    expect(other.chainId).toBe(1337n)
    expect(other.port).not.toBe(anvil.port)
    expect(() => process.kill(other.pid, 0)).not.toThrow()
    await other.stop()
    await other.stop()
    expect(() => process.kill(other.pid, 0)).toThrow()
  })

  it('keeps old blocks’ states in a folder of its own, readable, and removes it when stopped', async () => {
    const other = await startAnvil({ accounts: 1 })
    expect(other.cachePath.startsWith(tmpdir())).toBe(true)
    const account = other.accounts[0]!
    // Past anvil's in-memory window (~500 blocks) each block's state is written to disk.
    await other.provider.send('anvil_mine', ['0x258'])
    expect(readdirSync(other.cachePath, { recursive: true }).length).toBeGreaterThan(20)
    // Block 1's state now comes from that folder: history reads as with anvil's own default.
    expect(await other.provider.getBalance(account, 1)).toBe(10_000n * 10n ** 18n)
    await other.stop()
    expect(existsSync(other.cachePath)).toBe(false)
  })

  it('removes its folder and kills anvil when the process exits without stop()', async () => {
    const script = `
      import { startAnvil } from './src/anvil.ts'
      const a = await startAnvil({ accounts: 1 })
      await a.provider.send('anvil_mine', ['0x258'])
      console.log(JSON.stringify({ pid: a.pid, cachePath: a.cachePath }))
      process.exit(0)`
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--no-warnings', '--input-type=module', '-e', script],
      { cwd: fileURLToPath(new URL('..', import.meta.url)) },
    )
    const { pid, cachePath } = JSON.parse(stdout) as { pid: number; cachePath: string }
    expect(cachePath.startsWith(tmpdir())).toBe(true)
    expect(existsSync(cachePath)).toBe(false)
    // SIGKILLed as the child exited; give the kernel a moment (a zombie counts as gone).
    const running = (): boolean => {
      try {
        return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
      } catch {
        return false
      }
    }
    for (let i = 0; i < 40 && running(); i++) await new Promise((r) => setTimeout(r, 50))
    expect(running()).toBe(false)
  })

  it('reports a missing binary as AnvilError', async () => {
    await expectTyped(startAnvil({ binary: '/nonexistent/anvil' }), AnvilError, 'ANVIL')
    const saved = process.env.ANVIL_PATH
    process.env.ANVIL_PATH = '/nonexistent/anvil'
    try {
      await expectTyped(() => resolveAnvilBinary(), AnvilError, 'ANVIL')
    } finally {
      if (saved === undefined) delete process.env.ANVIL_PATH
      else process.env.ANVIL_PATH = saved
    }
  })
})

describe('deployDigicap', () => {
  it('deploys once per chain and returns the addresses file afterwards', async () => {
    const signer = anvil.signers[0]!
    const first = await deployDigicap(signer, { deploymentsDir: dir })
    expect(JSON.parse(readFileSync(deploymentFile(dir, 31337), 'utf8'))).toEqual(first)
    expect(readDeployment(dir, 31337n)).toEqual(first)
    const nonce = await signer.getNonce()
    const second = await deployDigicap(signer, { deploymentsDir: dir })
    expect(second).toEqual(first)
    expect(await signer.getNonce()).toBe(nonce)
    const c = connectDigicap(first, anvil.provider)
    expect(await c.accessController.capsuleRegistry()).toBe(first.capsuleRegistry)
    expect(await c.accessController.nodeRegistry()).toBe(first.nodeRegistry)
    expect(await c.nodeRegistry.minStake()).toBe(10n ** 16n)
    expect(await c.accessController.admin()).toBe(signer.address)
  })

  it('refuses a stale, outdated or malformed addresses file unless told to replace it', async () => {
    const signer = anvil.signers[1]!
    const stale = mkdtempSync(join(tmpdir(), 'digicap-stale-'))
    try {
      const file = deploymentFile(stale, 31337)
      const fake = {
        chainId: '31337',
        capsuleRegistry: '0x000000000000000000000000000000000000dEaD',
        nodeRegistry: '0x000000000000000000000000000000000000dEaD',
        accessController: '0x000000000000000000000000000000000000dEaD',
        committeeSortition: '0x000000000000000000000000000000000000dEaD',
        attestationHub: '0x000000000000000000000000000000000000dEaD',
        deployBlock: 1,
      }
      writeFileSync(file, JSON.stringify(fake))
      await expectTyped(
        deployDigicap(signer, { deploymentsDir: stale }),
        DeploymentError,
        'DEPLOYMENT',
      )
      const fresh = await deployDigicap(signer, { deploymentsDir: stale, replaceStale: true })
      expect(fresh.capsuleRegistry).not.toBe(fake.capsuleRegistry)
      expect(readDeployment(stale, 31337)).toEqual(fresh)
      for (const bad of [
        '{',
        JSON.stringify({ ...fake, chainId: '1' }),
        JSON.stringify({ ...fake, nodeRegistry: 'x' }),
      ]) {
        writeFileSync(file, bad)
        await expectTyped(
          deployDigicap(signer, { deploymentsDir: stale }),
          DeploymentError,
          'DEPLOYMENT',
        )
      }
      await expectTyped(() => readDeployment(stale, 5), DeploymentError, 'DEPLOYMENT')
      // A file from before the settlement contracts: stale, replaced only when asked.
      const { committeeSortition: _s, attestationHub: _h, ...legacy } = fresh
      writeFileSync(file, JSON.stringify(legacy))
      const err = await deployDigicap(signer, { deploymentsDir: stale }).catch((e) => e)
      expect(err).toBeInstanceOf(DeploymentError)
      expect(err.details.reason).toBe('no-settlement')
      const again = await deployDigicap(signer, { deploymentsDir: stale, replaceStale: true })
      expect(again.attestationHub).not.toBe(fresh.attestationHub)
      expect(readDeployment(stale, 31337)).toEqual(again)
      // A CommitteeSortition without MIN_WEIGHT (one deployed before ADR 0024's amendment; here
      // another contract stands in at its address): stale, replaced only when asked.
      writeFileSync(file, JSON.stringify({ ...again, committeeSortition: again.nodeRegistry }))
      const old = await deployDigicap(signer, { deploymentsDir: stale }).catch((e) => e)
      expect(old).toBeInstanceOf(DeploymentError)
      expect(old.details.reason).toBe('old-sortition')
      const current = await deployDigicap(signer, { deploymentsDir: stale, replaceStale: true })
      expect(current.committeeSortition).not.toBe(again.nodeRegistry)
      expect(await deployDigicap(signer, { deploymentsDir: stale })).toEqual(current)
    } finally {
      rmSync(stale, { recursive: true, force: true })
    }
  })
})

describe('decodeRevert and reasons', () => {
  const iface = new Interface(accessControllerAbi)

  it('decodes Digicap custom errors, Error(string) and Panic; passes other errors through', () => {
    const data = iface.encodeErrorResult('AccessDenied', [
      `0x${'11'.repeat(32)}`,
      `0x${'22'.repeat(20)}`,
      16,
    ])
    const e = decodeRevert({ code: 'CALL_EXCEPTION', data }) as ContractRevertError
    expect(e).toBeInstanceOf(ContractRevertError)
    expect(e.errorName).toBe('AccessDenied')
    expect(e.args[2]).toBe(16n)
    expect(reasonName(e.args[2] as bigint)).toBe('MAX_RUNS_REACHED')
    const str = decodeRevert({
      code: 'CALL_EXCEPTION',
      data: new Interface(['error Error(string)']).encodeErrorResult('Error', ['no']),
      reason: 'no',
    }) as ContractRevertError
    expect([str.errorName, str.args]).toEqual(['Error', ['no']])
    const panic = decodeRevert({
      code: 'CALL_EXCEPTION',
      data: `0x4e487b71${'0'.repeat(62)}11`,
    }) as ContractRevertError
    expect([panic.errorName, panic.args]).toEqual(['Panic', [0x11n]])
    const unknown = decodeRevert({
      code: 'CALL_EXCEPTION',
      data: '0xdeadbeef',
    }) as ContractRevertError
    expect(unknown.errorName).toBeUndefined()
    const empty = decodeRevert({ code: 'CALL_EXCEPTION' }) as ContractRevertError
    expect(empty).toBeInstanceOf(ContractRevertError)
    const nested = decodeRevert({ error: { data: { data } } }) as ContractRevertError
    expect(nested.errorName).toBe('AccessDenied')
    const plain = new TypeError('x')
    expect(decodeRevert(plain)).toBe(plain)
    expect(decodeRevert(e)).toBe(e)
  })

  it('rethrows reverts from withRevertDecoding as ContractRevertError', async () => {
    const data = iface.encodeErrorResult('InvalidSignature', [])
    await expectTyped(
      withRevertDecoding(Promise.reject({ code: 'CALL_EXCEPTION', data })),
      ContractRevertError,
      'CONTRACT_REVERT',
    )
    expect(await withRevertDecoding(Promise.resolve(5))).toBe(5)
  })

  it('names every reason code, custom codes and unknown ones', () => {
    for (const [name, code] of Object.entries(Reason)) expect(reasonName(code)).toBe(name)
    expect(reasonName(200)).toBe('CUSTOM_200')
    expect(reasonName(99)).toBe('UNKNOWN_99')
  })

  it('mirrors contracts/policy/Reason.sol and the AccessController reason codes exactly', () => {
    const sol = readFileSync(join(import.meta.dirname, '../contracts/policy/Reason.sol'), 'utf8')
    const controller = readFileSync(
      join(import.meta.dirname, '../contracts/AccessController.sol'),
      'utf8',
    )
    const fromSol = Object.fromEntries([
      ...[...sol.matchAll(/uint8 internal constant (\w+) = (\d+);/g)].map((m) => [
        m[1],
        Number(m[2]),
      ]),
      // The controller's own codes, outside Reason.sol so that policy metadata does not change.
      ...[...controller.matchAll(/uint8 public constant REASON_(\w+) = (\d+);/g)].map((m) => [
        m[1],
        Number(m[2]),
      ]),
    ])
    expect(fromSol).toEqual(Reason)
  })
})
