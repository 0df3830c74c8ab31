/**
 * Everything pi-node and executor-node write into their data folders is mode 0600 (files) or
 * 0700 (folders) whatever the caller's umask: every command here runs under `umask 000`
 * (pi-node init --deploy, seal, serve until ready; executor-node init, receive until
 * listening), then both folders are walked — ipfs/, deployments/, keys/, capsules/,
 * keyguard/ included. The executor's words and receiver key are in no file in clear.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { collectOutput } from '@digicap/cli-kit'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, type CliRun, type Doc } from './helpers/cli.ts'
import { looseModes } from './helpers/file-modes.ts'

const EXECUTOR_CLI = fileURLToPath(new URL('../../executor-node/src/cli.ts', import.meta.url))

let anvil: Anvil
let tpm: Swtpm
let dir: string

/** `node <cli> <args>` under `umask 000` (a shell sets it, then execs node). */
function spawnUmask000(cli: string, args: string[], env: Record<string, string>) {
  const node = [process.execPath, '--disable-warning=ExperimentalWarning', cli, ...args]
  return spawn('/bin/sh', ['-c', 'umask 000 && exec "$@"', 'sh', ...node], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
  })
}

async function finish(child: ChildProcessWithoutNullStreams, stdin = ''): Promise<CliRun> {
  const out = collectOutput(child)
  child.stdin.end(stdin)
  const code = await out.exited
  return { code, stdout: out.stdout(), stderr: out.stderr() }
}

/** Runs a long-lived command until its first stdout line, then SIGTERM; its first document. */
async function untilFirstLine(child: ChildProcessWithoutNullStreams): Promise<Doc> {
  const out = collectOutput(child)
  child.stdin.end()
  while (!out.stdout().includes('\n')) {
    if (child.exitCode !== null) throw new Error(`exited before its first line:\n${out.stderr()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  // Its files are written by then; a SIGTERM that lands before its handler is installed ends
  // it without the clean stop (tested elsewhere), which changes nothing here.
  child.kill('SIGTERM')
  const code = await out.exited
  if (code !== 0 && code !== null) throw new Error(`exit ${code}:\n${out.stderr()}`)
  return JSON.parse(out.stdout().split('\n')[0] as string)
}

beforeAll(async () => {
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
  dir = await mkdtemp(join(tmpdir(), 'file-modes-'))
}, 60_000)

afterAll(async () => {
  await Promise.all([anvil?.stop(), tpm?.stop()])
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('data folder modes under umask 000', () => {
  it('pi-node and executor-node write 0600 files and 0700 folders only', async () => {
    const pi = { DIGICAP_DATA_DIR: join(dir, 'pi'), DIGICAP_RPC_URL: anvil.rpcUrl }
    const piRun = (args: string[]) => finish(spawnUmask000(CLI, args, pi))
    const init = await piRun(['init', '--deploy', '--tcti', tpm.tcti, '--json'])
    expect(init.code, init.stderr).toBe(0)
    const { contracts } = JSON.parse(init.stdout)
    await writeFile(join(dir, 'a.bin'), randomBytes(2000))
    const sealed = await piRun(['seal', join(dir, 'a.bin'), '--policy', 'maxRuns(1)', '--json'])
    expect(sealed.code, sealed.stderr).toBe(0)
    const serve = spawnUmask000(CLI, ['serve', '--json', '--listen', '/ip4/127.0.0.1/tcp/0'], pi)
    expect(await untilFirstLine(serve)).toMatchObject({ ok: true, command: 'serve' })

    const ex = { DIGICAP_DATA_DIR: join(dir, 'executor'), DIGICAP_RPC_URL: anvil.rpcUrl }
    const exInit = await finish(
      spawnUmask000(
        EXECUTOR_CLI,
        [
          ...['init', '--capsule-registry', contracts.capsuleRegistry],
          ...['--node-registry', contracts.nodeRegistry],
          ...['--access-controller', contracts.accessController],
          ...['--listen', '/ip4/127.0.0.1/tcp/0', '--json'],
        ],
        ex,
      ),
    )
    expect(exInit.code, exInit.stderr).toBe(0)
    // No TPM named: the software sealer, and it says so.
    expect(exInit.stderr).toContain('INSECURE')
    // init shows the words once on stderr, numbered (`  1. word`).
    const words = exInit.stderr
      .split('\n')
      .flatMap((l) => /^\s*\d+\. ([a-z]+)$/.exec(l)?.slice(1) ?? [])
      .join(' ')
    expect(words.split(' ')).toHaveLength(24)
    const receive = spawnUmask000(EXECUTOR_CLI, ['receive', '--once', '--json'], ex)
    const listening = await untilFirstLine(receive)
    expect(listening).toMatchObject({ event: 'listening' })

    const piNames = await readdir(pi.DIGICAP_DATA_DIR)
    for (const d of ['ipfs', 'deployments', 'keys', 'capsules', 'keyguard']) {
      expect(piNames).toContain(d)
    }
    const exNames = await readdir(ex.DIGICAP_DATA_DIR)
    expect(exNames).toEqual(expect.arrayContaining(['ipfs', 'secrets.json', 'config.json']))
    expect(exNames).not.toContain('identity.json')
    expect(exNames).not.toContain('receiver.key')
    expect(await looseModes(pi.DIGICAP_DATA_DIR)).toEqual([])
    expect(await looseModes(ex.DIGICAP_DATA_DIR)).toEqual([])

    // The words and the receiver key are sealed: in no file of the executor's folder in clear.
    const secrets = await readFile(join(ex.DIGICAP_DATA_DIR, 'secrets.json'), 'utf8')
    expect(secrets).not.toContain(words.split(' ').slice(0, 3).join(' '))
  }, 240_000)
})
