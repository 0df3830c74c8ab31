/**
 * Genuine quotes from a real swtpm through tpm2-tools, for tests and the vector generator.
 * The swtpm comes from `@digicap/tpm/testing` (one copy of the swtpm starter). Keys are
 * made persistent so they survive a TPM Reset or Restart (a restarted swtpm keeps its state).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { type Swtpm, startSwtpm } from '@digicap/tpm/testing'

const run = promisify(execFile)

export const EK_HANDLE = '0x81010001'

export type AkKind = 'rsa' | 'rsapss' | 'ecc'

export interface Quote {
  attest: Uint8Array
  signature: Uint8Array
  pcrValues: Map<number, Uint8Array>
}

export interface QuoteOptions {
  qualifyingData: Uint8Array
  /** A tpm2-tools PCR list. Default `sha256:0,1,2,3,4,5,6,7,23`. */
  pcrList?: string
  /** tpm2_quote `--scheme` (`rsassa`, `rsapss`, `ecdsa`); default: tpm2-tools' choice for the key. */
  scheme?: string
}

export interface TpmQuoter {
  readonly tpm: Swtpm
  /** Creates an EK (TCG EK template) persisted at `handle`, returns its TPM2B_PUBLIC. */
  createEk(kind: 'rsa' | 'ecc', handle?: string): Promise<Uint8Array>
  /** Creates an AK under the EK at `ekHandle`, persists it at `handle`, returns its TPM2B_PUBLIC. */
  createAk(kind: AkKind, handle: string, ekHandle?: string): Promise<Uint8Array>
  quote(handle: string, options: QuoteOptions): Promise<Quote>
  /** TPM2_GetTime signed by the AK: a TPMS_ATTEST of type TPM_ST_ATTEST_TIME. */
  getTime(
    handle: string,
    qualifyingData: Uint8Array,
  ): Promise<{ attest: Uint8Array; signature: Uint8Array }>
  /** TPM2_ActivateCredential with the AK at `akHandle` and the EK at `ekHandle`; returns the secret. */
  activateCredential(
    credentialFile: Uint8Array,
    akHandle: string,
    ekHandle?: string,
  ): Promise<Uint8Array>
  /** `tpm2_makecredential -T none`: the reference implementation, in software. */
  makeCredentialWithTools(
    ekPublic: Uint8Array,
    objectName: Uint8Array,
    secret: Uint8Array,
  ): Promise<Uint8Array>
  extend(pcr: number, digest: Uint8Array): Promise<void>
  /** TPM2_PCR_Reset (PCR 23 is resettable at locality 0). */
  resetPcr(pcr: number): Promise<void>
  readPcrs(pcrs: readonly number[]): Promise<Map<number, Uint8Array>>
  /** Kills swtpm without a shutdown and starts it on the same state: a TPM Reset (power loss). */
  powerCycle(): Promise<void>
  /** TPM2_Shutdown(STATE) then Startup(CLEAR): a TPM Restart. */
  restart(): Promise<void>
  stop(): Promise<void>
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

export async function startQuoter(): Promise<TpmQuoter> {
  const stateDir = await mkdtemp(join(tmpdir(), 'digicap-attest-'))
  const files = await mkdtemp(join(tmpdir(), 'digicap-attest-files-'))
  let tpm = await startSwtpm({ stateDir })
  const tool = async (cmd: string, args: string[]) => {
    await run(cmd, args, { env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti } })
  }
  const file = (name: string) => join(files, name)
  let n = 0

  /** Values of the FIRST bank of a tpm2-tools PCR list (`-F values` concatenates all banks). */
  async function readPcrFile(path: string, pcrList: string): Promise<Map<number, Uint8Array>> {
    const values = new Uint8Array(await readFile(path))
    const [bank = '', list = ''] = (pcrList.split('+')[0] ?? '').split(':')
    const size = bank === 'sha1' ? 20 : 32
    const pcrs = list.split(',').map(Number)
    return new Map(pcrs.map((p, i) => [p, values.slice(i * size, i * size + size)]))
  }

  const quoter: TpmQuoter = {
    get tpm() {
      return tpm
    },
    async createEk(kind, handle = EK_HANDLE) {
      const id = n++
      await tool('tpm2_createek', ['-c', handle, '-G', kind, '-u', file(`ek${id}.pub`)])
      return new Uint8Array(await readFile(file(`ek${id}.pub`)))
    },
    async createAk(kind, handle, ekHandle = EK_HANDLE) {
      const id = n++
      const [alg, scheme] =
        kind === 'ecc' ? ['ecc', 'ecdsa'] : ['rsa', kind === 'rsapss' ? 'rsapss' : 'rsassa']
      await tool('tpm2_createak', [
        '-C',
        ekHandle,
        '-c',
        file(`ak${id}.ctx`),
        '-G',
        alg,
        '-g',
        'sha256',
        '-s',
        scheme,
        '-u',
        file(`ak${id}.pub`),
        '-f',
        'tss',
      ])
      await tool('tpm2_flushcontext', ['-t'])
      await tool('tpm2_evictcontrol', ['-C', 'o', '-c', file(`ak${id}.ctx`), handle])
      await tool('tpm2_flushcontext', ['-t'])
      return new Uint8Array(await readFile(file(`ak${id}.pub`)))
    },
    async quote(handle, options) {
      const id = n++
      const pcrList = options.pcrList ?? 'sha256:0,1,2,3,4,5,6,7,23'
      await tool('tpm2_quote', [
        '-c',
        handle,
        '-l',
        pcrList,
        '-q',
        hex(options.qualifyingData),
        '-g',
        'sha256',
        '-m',
        file(`q${id}.msg`),
        '-s',
        file(`q${id}.sig`),
        '-o',
        file(`q${id}.pcrs`),
        '-F',
        'values',
        ...(options.scheme === undefined ? [] : ['--scheme', options.scheme]),
      ])
      return {
        attest: new Uint8Array(await readFile(file(`q${id}.msg`))),
        signature: new Uint8Array(await readFile(file(`q${id}.sig`))),
        pcrValues: await readPcrFile(file(`q${id}.pcrs`), pcrList),
      }
    },
    async getTime(handle, qualifyingData) {
      const id = n++
      await tool('tpm2_gettime', [
        '-c',
        handle,
        '-q',
        hex(qualifyingData),
        '-g',
        'sha256',
        '--attestation',
        file(`t${id}.msg`),
        '-o',
        file(`t${id}.sig`),
      ])
      return {
        attest: new Uint8Array(await readFile(file(`t${id}.msg`))),
        signature: new Uint8Array(await readFile(file(`t${id}.sig`))),
      }
    },
    async activateCredential(credentialFile, akHandle, ekHandle = EK_HANDLE) {
      const id = n++
      await writeFile(file(`c${id}.in`), credentialFile)
      const session = file(`c${id}.session`)
      await tool('tpm2_startauthsession', ['--policy-session', '-S', session])
      try {
        await tool('tpm2_policysecret', ['-S', session, '-c', 'e'])
        await tool('tpm2_activatecredential', [
          '-c',
          akHandle,
          '-C',
          ekHandle,
          '-i',
          file(`c${id}.in`),
          '-o',
          file(`c${id}.out`),
          '-P',
          `session:${session}`,
        ])
      } finally {
        await tool('tpm2_flushcontext', [session])
      }
      return new Uint8Array(await readFile(file(`c${id}.out`)))
    },
    async makeCredentialWithTools(ekPublic, objectName, secret) {
      const id = n++
      await writeFile(file(`m${id}.ek`), ekPublic)
      await writeFile(file(`m${id}.secret`), secret)
      await run('tpm2_makecredential', [
        '-T',
        'none',
        '-u',
        file(`m${id}.ek`),
        '-s',
        file(`m${id}.secret`),
        '-n',
        hex(objectName),
        '-o',
        file(`m${id}.out`),
      ])
      return new Uint8Array(await readFile(file(`m${id}.out`)))
    },
    async extend(pcr, digest) {
      await tool('tpm2_pcrextend', [`${pcr}:sha256=${hex(digest)}`])
    },
    async resetPcr(pcr) {
      await tool('tpm2_pcrreset', [String(pcr)])
    },
    async readPcrs(pcrs) {
      const id = n++
      await tool('tpm2_pcrread', [`sha256:${pcrs.join(',')}`, '-o', file(`r${id}.pcrs`)])
      return readPcrFile(file(`r${id}.pcrs`), `sha256:${pcrs.join(',')}`)
    },
    async powerCycle() {
      await tpm.stop()
      tpm = await startSwtpm({ stateDir })
    },
    async restart() {
      await tool('tpm2_shutdown', [])
      await tpm.stop()
      tpm = await startSwtpm({ stateDir })
    },
    async stop() {
      await tpm.stop()
      await rm(stateDir, { recursive: true, force: true })
      await rm(files, { recursive: true, force: true })
    },
  }
  return quoter
}
