/**
 * A man in the middle on the TPM bus cannot pick the PCR values the owner approves (ADR 0089).
 * `key-policy authorize` (and init, which approves this boot at once) signs the values the TPM
 * reports; `TPM2_PCR_Read` has no secret, but an unauthenticated answer let a bus attacker
 * swap in the values of the system HE will boot, and the owner's signature then opened the
 * key for it. Now the read runs in an audit session salted to the pinned wrapping key and its
 * response HMAC is checked: a swapped value is `TPM_SESSION` `response-hmac` and nothing is
 * signed. Real swtpm behind a rewriting TCP proxy (test/helpers/bus-proxy.ts).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { derivePolicyAuthKey, generateMnemonic, readKeyRecord, tpm2Sealer } from '../src/index.ts'
import { keyPolicyAuthorize, keyPolicyView, readPcrValues } from '../src/local.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'
import { expectCode } from './compliance.ts'
import { type BusProxy, commandCode, startBusProxy } from './helpers/bus-proxy.ts'

const PCR = 16
const HANDLE = 0x81000060
const PCR_READ = 0x17e
const quiet = { info: () => {}, warn: () => {} }

let tpm: Swtpm
let dir: string
let recordFile: string
let words: string
let proxy: BusProxy
let real: Buffer
/** What the attacker's system will measure into the PCR. */
const chosen = randomBytes(32)

beforeAll(async () => {
  tpm = await startSwtpm()
  dir = await mkdtemp(join(tmpdir(), 'kg-pcr-bus-'))
  recordFile = join(dir, 'tpm2-key.json')
  words = generateMnemonic()
  const authKey = await derivePolicyAuthKey(words)
  await tpm2Sealer({
    tcti: tpm.tcti,
    handle: HANDLE,
    createIfMissing: true,
    keyRecordFile: recordFile,
    pcrPolicy: { authKey: authKey.publicKey, pcrs: [PCR] },
    logger: quiet,
  }).publicKey()
  await execa('tpm2_pcrextend', [`${PCR}:sha256=${randomBytes(32).toString('hex')}`], {
    env: { TPM2TOOLS_TCTI: tpm.tcti },
  })
  real = Buffer.from((await readPcrValues(tpm.tcti, [PCR])).get(PCR) as Uint8Array)
  // Every PCR_Read answer that carries the real value carries the chosen one instead.
  proxy = await startBusProxy(tpm.port, (command, response) => {
    if (commandCode(command) !== PCR_READ) return undefined
    const at = response.indexOf(real)
    if (at < 0) return undefined
    const out = Buffer.from(response)
    chosen.copy(out, at)
    return out
  })
}, 60_000)

afterAll(async () => {
  await proxy?.close()
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('PCR values read over a tampered bus (swtpm behind a rewriting proxy)', () => {
  it('authorize refuses the swapped values: TPM_SESSION response-hmac, nothing signed', async () => {
    const before = await readFile(recordFile, 'utf8')
    const err = await expectCode(keyPolicyAuthorize(proxy.tcti, recordFile, words), 'TPM_SESSION')
    expect(err.details).toMatchObject({ reason: 'response-hmac', command: 'TPM2_PCR_Read' })
    expect(proxy.tampered()).toBeGreaterThan(0)
    expect(await readFile(recordFile, 'utf8')).toBe(before)
    expect((await readKeyRecord(recordFile))?.policy?.approval).toBeUndefined()
  })

  it('show refuses them too', async () => {
    await expectCode(keyPolicyView(proxy.tcti, recordFile), 'TPM_SESSION')
  })

  it('control: straight to the TPM, the real value is approved', async () => {
    const view = await keyPolicyAuthorize(tpm.tcti, recordFile, words)
    expect(view.lines).toEqual([
      { pcr: PCR, approved: real.toString('hex'), current: real.toString('hex'), match: true },
    ])
    const approved = (await readKeyRecord(recordFile))?.policy?.approval?.pcrValues.get(PCR)
    expect(Buffer.from(approved as Uint8Array).equals(real)).toBe(true)
  })
})
