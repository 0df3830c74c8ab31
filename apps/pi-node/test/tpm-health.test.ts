/**
 * "TPM reachable" on `/healthz` and the status page is a real probe: `pi-node serve` (its own
 * process, a real swtpm, a real anvil) with a 1 s health cache. The swtpm is stopped: within
 * the cache window plus one probe, `/healthz` answers 503 and the page's TPM row says FAIL;
 * the same swtpm (state, port) is started again: both turn green again. The probes are not
 * counted as the keyguard's TPM unwraps.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Doc, runJson, startCli } from './helpers/cli.ts'

const CACHE_MS = 1_000

let anvil: Anvil
let tpm: Swtpm
let again: ChildProcess | undefined
let dir: string
let serve: ChildProcess
let exited: Promise<number | null>
let ops: string
let token: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-node-tpm-health-'))
  const stateDir = join(dir, 'swtpm')
  await mkdir(stateDir)
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm({ stateDir })])
  const env = { DIGICAP_DATA_DIR: join(dir, 'node'), DIGICAP_RPC_URL: anvil.rpcUrl }
  const init = await runJson(
    ['init', '--deploy', '--tcti', tpm.tcti, '--listen', '/ip4/127.0.0.1/tcp/0', '--json'],
    env,
  )
  expect(init.code, init.stderr).toBe(0)
  const daemon = await startCli(
    // swtpm is not hardware-backed: accepted on purpose, or the tpm check is red.
    [
      'serve',
      '--json',
      '--ops-port',
      '0',
      '--health-cache-ms',
      String(CACHE_MS),
      '--allow-software-sealer',
    ],
    env,
  )
  serve = daemon.child
  exited = daemon.exited
  ops = daemon.ready.ops.url
  token = (await readFile(join(dir, 'node', 'status-token'), 'utf8')).trim()
}, 90_000)

afterAll(async () => {
  if (serve && serve.exitCode === null) {
    serve.kill('SIGTERM')
    await exited
  }
  again?.kill('SIGKILL')
  await Promise.all([anvil?.stop(), tpm?.stop()])
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function health(): Promise<{ status: number; tpm: { ok: boolean; detail: Doc } }> {
  const res = await fetch(`${ops}/healthz`)
  return { status: res.status, tpm: ((await res.json()) as Doc).checks.tpm }
}

/** The status page's TPM row: `ok` or `FAIL`, and its text. */
async function pageRow(): Promise<string> {
  const page = await (
    await fetch(`${ops}/status`, { headers: { authorization: `Bearer ${token}` } })
  ).text()
  const row = /<tr data-health="tpm">(.*?)<\/tr>/.exec(page)?.[1] ?? ''
  return row.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ')
}

/** Polls `/healthz` until the TPM check is `ok`; returns the ms it took. */
async function untilTpm(ok: boolean, ms: number): Promise<number> {
  const t0 = performance.now()
  for (;;) {
    const h = await health()
    if (h.tpm.ok === ok) {
      expect(h.status).toBe(ok ? 200 : 503)
      return performance.now() - t0
    }
    if (performance.now() - t0 > ms) throw new Error(`tpm stayed ${!ok}: ${JSON.stringify(h)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe('pi-node serve: the TPM health row is a real, cached probe', () => {
  it('green while the swtpm runs: an unwrap round trip in the TPM', async () => {
    const h = await health()
    expect(h.status).toBe(200)
    expect(h.tpm.detail.text).toMatch(
      /^tpm2 NOT hardware-backed \(accepted\), unwrap probe answered in \d+ ms$/,
    )
    expect(await pageRow()).toMatch(/tpm ok tpm2/)
  })

  it('red within the cache window after the swtpm stops, green again after it restarts', async () => {
    await tpm.stop()
    // At most one window of cached green, then one failing probe (connection refused: fast).
    const red = await untilTpm(false, CACHE_MS + 10_000)
    expect(red).toBeLessThan(CACHE_MS + 5_000)
    expect((await health()).tpm.detail.text).toMatch(/^unreachable: /)
    expect(await pageRow()).toMatch(/tpm FAIL unreachable/)

    // The same TPM again: its state (the persistent key) on the same port.
    again = spawn(
      'swtpm',
      [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${tpm.stateDir}`,
        '--server',
        `type=tcp,port=${tpm.port},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${tpm.port + 1},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
      ],
      { stdio: 'ignore' },
    )
    await untilTpm(true, CACHE_MS + 15_000)
    expect(await pageRow()).toMatch(/tpm ok tpm2/)

    // Probes are not the keyguard's unwraps.
    const metrics = await (await fetch(`${ops}/metrics`)).text()
    expect(metrics).not.toMatch(/^digicap_tpm_op_seconds_count\{op="unwrap"\} [1-9]/m)
    serve.kill('SIGTERM')
    expect(await exited).toBe(0)
  }, 60_000)
})
