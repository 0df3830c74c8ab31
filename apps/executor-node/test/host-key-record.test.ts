/**
 * The executor's host sealer after init (real anvil, real swtpm): the TPM key that seals the
 * wallet words and receiver key is made by `executor-node init` only. A later start (here the
 * real `receive` command and the library's `readSecrets`) refuses a deleted, corrupt or swapped
 * key record, and an evicted key, with a typed error; it never pins or provisions afresh (ADR
 * 0029 amendment). Before, every start ran with `createIfMissing`: a deleted record was written
 * again from whatever key the TPM showed, a corrupt one moved aside, a swapped key re-pinned with
 * a warning and an evicted one replaced by a new key.
 */
import { execFile } from 'node:child_process'
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { loadConfig, readSecrets } from '@digicap/executor/node'
import {
  HOST_SECRETS_TPM2_HANDLE,
  readKeyRecord,
  TPM2_KEY_RECORD_FILE,
  tpm2Sealer,
} from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli, startCli } from './helpers/cli.ts'

const ADDRESS = (b: string) => `0x${b.repeat(20)}`
const HANDLE = `0x${HOST_SECRETS_TPM2_HANDLE.toString(16)}`

let anvil: Anvil
let tpm: Swtpm
let dir: string
let dataDir: string
let recordFile: string

const tools = (tool: string, args: string[]) =>
  promisify(execFile)(tool, args, { env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti } })
const start = async () => readSecrets(await loadConfig(dataDir, {}))
/** The code and reason a start is refused with (or `started` if it was not). */
const refusal = async () => {
  try {
    const s = await start()
    s.receiverKey.fill(0)
    return 'started'
  } catch (err) {
    const e = err as { code?: string; details?: { reason?: string; why?: string }; hint?: string }
    expect(e.hint, String(err)).toMatch(/\S/) // every refusal says what to do
    return `${e.code}/${e.details?.reason ?? e.details?.why ?? ''}`
  }
}
const handleEmpty = async () =>
  tools('tpm2_readpublic', ['-c', HANDLE]).then(
    () => false,
    () => true,
  )

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'executor-host-key-record-'))
  dataDir = join(dir, 'node')
  recordFile = join(dataDir, TPM2_KEY_RECORD_FILE)
  ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
  const init = await runCli(
    [
      ...['init', '--json', '--data-dir', dataDir, '--rpc-url', anvil.rpcUrl],
      ...['--tcti', tpm.tcti, '--listen', '/ip4/127.0.0.1/tcp/0'],
      ...['--capsule-registry', ADDRESS('11'), '--node-registry', ADDRESS('22')],
      ...['--access-controller', ADDRESS('33')],
    ],
    { HOME: dir },
    { onlyEnv: true },
  )
  expect(init.code, init.stderr).toBe(0)
}, 90_000)

afterAll(async () => {
  await Promise.all([anvil?.stop(), tpm?.stop()])
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe("executor-node's host key after init (swtpm)", () => {
  it('a deleted key record: the start is refused (CLI and library), the record is not written again', async () => {
    const kept = join(dir, 'record.kept')
    await copyFile(recordFile, kept)
    await rm(recordFile)

    // Through the real command: it must exit with the typed error, not start listening.
    const receive = startCli(
      ['receive', '--json', '--data-dir', dataDir],
      { HOME: dir },
      {
        onlyEnv: true,
      },
    )
    const outcome = await Promise.race([
      receive.exited.then((code) => ({ code })),
      receive.waitFor('listening').then(() => ({ code: 'listening' as const })),
    ])
    if (outcome.code === 'listening') await receive.stop()
    expect(outcome.code).toBe(1)
    expect(receive.stderr()).toMatch(/key-record-missing|record of the pinned TPM key is missing/)

    expect(await refusal()).toBe('TPM_SESSION/key-record-missing')
    expect(await readFile(recordFile).catch(() => 'absent')).toBe('absent')
    await copyFile(kept, recordFile) // the backup restored: it starts again
    expect(await refusal()).toBe('started')
  }, 60_000)

  it('a corrupt key record: refused, left in place, not moved aside and re-pinned', async () => {
    const good = await readFile(recordFile)
    const garbage = Buffer.concat([good.subarray(0, 40), Buffer.from('\u0000garbage')])
    await writeFile(recordFile, garbage, { mode: 0o600 })
    expect(await refusal()).toBe('KEY_STORE_CORRUPT/json')
    expect(await readFile(recordFile)).toEqual(garbage)
    expect((await readdir(dataDir)).filter((n) => n.includes('.corrupt-'))).toEqual([])
    await writeFile(recordFile, good, { mode: 0o600 })
    expect(await refusal()).toBe('started')
  }, 60_000)

  it('an evicted key: refused, no new key is made at the handle', async () => {
    const pinned = await readFile(recordFile)
    await tools('tpm2_evictcontrol', ['-C', 'o', '-c', HANDLE])
    expect(await refusal()).toBe('TPM_SESSION/pinned-key-gone')
    expect(await handleEmpty()).toBe(true)
    expect(await readFile(recordFile)).toEqual(pinned)
  }, 60_000)

  it('a swapped key at the handle: refused, the record still pins the old key', async () => {
    const pinned = await readKeyRecord(recordFile)
    // Someone provisions a key of his own at the (now empty) handle.
    const other = tpm2Sealer({
      tcti: tpm.tcti,
      handle: HOST_SECRETS_TPM2_HANDLE,
      createIfMissing: true,
    })
    const otherKeyId = (await other.publicKey()).keyId
    expect(otherKeyId).not.toBe(pinned?.keyId)
    expect(await refusal()).toBe('TPM_SESSION/key-substituted')
    expect((await readKeyRecord(recordFile))?.keyId).toBe(pinned?.keyId)
  }, 60_000)
})
