/**
 * The attestation agent on the executor: keys through tpm2-tools, the per-run commands
 * (PCR 23 reset/extend, quote, PCR read) as raw commands over `@digicap/tpm`'s direct
 * transport, the same code path for swtpm and `/dev/tpmrm0`. Commands run one at a time.
 */
import { InvalidArgumentError } from '@digicap/capsule-core'
import { sendWithRetry, type Tpm2ToolsOptions, transportFor } from '@digicap/tpm'
import { equalBytes } from '../bytes.ts'
import { RunPcrNotResetError } from '../errors.ts'
import { MAX_EVENTS, type RunEvent } from '../event-log/format.ts'
import { PCR23_RESET_VALUE } from '../event-log/replay.ts'
import { runEvents } from '../phases/phase.ts'
import { parseQuoteAttest } from '../tpm/attest.ts'
import { quoteBinding } from '../verifier/binding.ts'
import { DEFAULT_QUOTE_PCRS, pcrCompositeDigest } from '../verifier/pcrs.ts'
import {
  decodeEmpty,
  decodePcrRead,
  decodeQuote,
  encodePcrExtend,
  encodePcrRead,
  encodePcrReset,
  encodeQuote,
  MAX_PCRS_PER_READ,
} from './commands.ts'
import {
  activateCredential,
  createAk,
  createEk,
  readEkCertificate,
  readPublic,
} from './provision.ts'
import type { AttestationAgent, AttestationAgentInit, CleanupReport } from './types.ts'

export const RUN_PCR = 23
export const DEFAULT_EK_HANDLES = { rsa: 0x81010001, ecc: 0x81010002 } as const
export const DEFAULT_AK_HANDLE = 0x81010010
/** How often a quote is retaken when a PCR changed between the quote and the read. */
const QUOTE_ATTEMPTS = 3

function checkHandle(name: string, handle: number): void {
  if (!Number.isInteger(handle) || handle < 0x81000000 || handle > 0x817fffff) {
    throw new InvalidArgumentError(`${name} must be a persistent handle (0x81000000–0x817FFFFF)`, {
      details: { name, handle },
    })
  }
}

/**
 * Creates an agent for the TPM at `tcti`. Nothing touches the TPM until a method is called.
 *
 * @throws {InvalidArgumentError} a TCTI without a direct transport (only `swtpm:` and
 *   `device:`), a bad handle or key kind.
 */
export function createAttestationAgent(init: AttestationAgentInit): AttestationAgent {
  const ekKind = init.ek ?? 'rsa'
  const akKind = init.ak ?? ekKind
  for (const [name, kind] of [
    ['ek', ekKind],
    ['ak', akKind],
  ] as const) {
    if (kind !== 'rsa' && kind !== 'ecc') {
      throw new InvalidArgumentError(`${name} must be "rsa" or "ecc"`, { details: { name } })
    }
  }
  const ekHandle = init.ekHandle ?? DEFAULT_EK_HANDLES[ekKind]
  const akHandle = init.akHandle ?? DEFAULT_AK_HANDLE
  checkHandle('ekHandle', ekHandle)
  checkHandle('akHandle', akHandle)
  if (ekHandle === akHandle) {
    throw new InvalidArgumentError('ekHandle and akHandle must differ', { details: { ekHandle } })
  }
  const timeoutMs = init.timeoutMs ?? 10_000
  const transport = typeof init.tcti === 'string' ? transportFor(init.tcti, timeoutMs) : undefined
  if (transport === undefined) {
    throw new InvalidArgumentError(
      'The agent needs a swtpm: or device: TCTI (e.g. device:/dev/tpmrm0)',
      { details: { name: 'tcti' } },
    )
  }
  const tools: Tpm2ToolsOptions = { tcti: init.tcti, toolsPath: init.toolsPath, timeoutMs }

  let queue: Promise<unknown> = Promise.resolve()
  function serial<T>(run: () => Promise<T>): Promise<T> {
    const next = queue.then(run, run)
    queue = next.catch(() => undefined)
    return next
  }

  let log: RunEvent[] = []
  let cleanup: CleanupReport | undefined

  async function send(commandBytes: Uint8Array): Promise<Uint8Array> {
    return sendWithRetry(transport!, commandBytes)
  }
  async function reset(): Promise<void> {
    decodeEmpty('TPM2_PCR_Reset', await send(encodePcrReset(RUN_PCR)))
  }
  async function extend(digest: Uint8Array): Promise<void> {
    decodeEmpty('TPM2_PCR_Extend', await send(encodePcrExtend(RUN_PCR, digest)))
  }
  async function readPcrs(pcrs: readonly number[]): Promise<Map<number, Uint8Array>> {
    const values = new Map<number, Uint8Array>()
    for (let i = 0; i < pcrs.length; i += MAX_PCRS_PER_READ) {
      const part = pcrs.slice(i, i + MAX_PCRS_PER_READ)
      for (const [k, v] of decodePcrRead(await send(encodePcrRead(part)), part)) values.set(k, v)
    }
    return values
  }
  function record(events: RunEvent[]): void {
    // Keep the log bounded: a log that starts with a reset replays from any earlier state.
    if (log.length + events.length > MAX_EVENTS) log = []
    log.push(...events)
  }

  return {
    provision: () =>
      serial(async () => {
        const ekPublic =
          (await readPublic(tools, ekHandle)) ?? (await createEk(tools, ekKind, ekHandle))
        const akPublic =
          (await readPublic(tools, akHandle)) ?? (await createAk(tools, akKind, akHandle, ekHandle))
        const ekCertificate = await readEkCertificate(tools, ekKind)
        return { ekPublic, akPublic, ...(ekCertificate === undefined ? {} : { ekCertificate }) }
      }),

    activateCredential: (credential) =>
      serial(() => activateCredential(tools, credential, akHandle, ekHandle)),

    resetRunPcr: () =>
      serial(async () => {
        await reset()
        log = [{ kind: 'reset', digest: new Uint8Array(32) }]
      }),

    beginRun: (run) =>
      serial(async () => {
        const events = runEvents(run)
        await reset()
        log = [{ kind: 'reset', digest: new Uint8Array(32) }]
        cleanup = undefined
        for (const e of events) {
          await extend(e.digest)
          record([e])
        }
      }),

    readRunPcr: () =>
      serial(async () => (await readPcrs([RUN_PCR])).get(RUN_PCR) ?? new Uint8Array()),

    measureRun: (run) =>
      serial(async () => {
        const events = runEvents(run)
        const pcr = (await readPcrs([RUN_PCR])).get(RUN_PCR)
        if (pcr === undefined || !equalBytes(pcr, PCR23_RESET_VALUE)) {
          throw new RunPcrNotResetError('PCR 23 is not at its reset value', {
            details: { pcr: RUN_PCR },
          })
        }
        // PCR 23 is at its reset value: a log that starts with a reset replays exactly.
        log = [{ kind: 'reset', digest: new Uint8Array(32) }]
        cleanup = undefined
        for (const e of events) {
          await extend(e.digest)
          record([e])
        }
      }),

    endRun: (report) =>
      serial(async () => {
        if (!(report?.grantId instanceof Uint8Array) || report.grantId.length !== 32) {
          throw new InvalidArgumentError('report.grantId must be 32 bytes', {
            details: { name: 'grantId' },
          })
        }
        await reset()
        record([{ kind: 'reset', digest: new Uint8Array(32) }])
        cleanup = {
          grantId: report.grantId.slice(),
          workspaceRemoved: report.workspaceRemoved === true,
          keyBuffersWiped: report.keyBuffersWiped === true,
        }
      }),

    quote: (binding) =>
      serial(async () => {
        const qualifyingData = quoteBinding(binding)
        const pcrs = DEFAULT_QUOTE_PCRS
        for (let attempt = 1; ; attempt++) {
          const { attest, signature } = decodeQuote(
            await send(encodeQuote(akHandle, qualifyingData, pcrs)),
          )
          const pcrValues = await readPcrs(pcrs)
          // A PCR extended by someone else between quote and read: take the quote again.
          const same = equalBytes(
            parseQuoteAttest(attest).pcrDigest,
            pcrCompositeDigest(pcrValues, pcrs),
          )
          if (same || attempt >= QUOTE_ATTEMPTS) {
            return {
              attest,
              signature,
              pcrValues,
              eventLog: log.map((e) => ({ kind: e.kind, digest: e.digest.slice() })),
              ...(cleanup === undefined
                ? {}
                : { cleanup: { ...cleanup, grantId: cleanup.grantId.slice() } }),
            }
          }
        }
      }),

    eventLog: () => log.map((e) => ({ kind: e.kind, digest: e.digest.slice() })),
  }
}
