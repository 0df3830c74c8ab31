/**
 * The sealer of a node's own secrets on its host (an executor's wallet words and receiver
 * key): the TPM when the host has one, else the software sealer, which logs and describes
 * itself as INSECURE (its key is a file next to the sealed secrets: it protects a copy of the
 * secrets file alone, not a copy of the whole data folder).
 */
import { join } from 'node:path'
import type { Logger } from '../types.ts'
import type { Sealer } from './sealer.ts'
import { softwareSealer } from './software-sealer.ts'
import { TPM2_KEY_RECORD_FILE } from './tpm2-key-record.ts'
import { tpm2Sealer } from './tpm2-sealer.ts'

/** Persistent handle of a host's secrets key: beside the keyguard's wrapping key (0x81000010). */
export const HOST_SECRETS_TPM2_HANDLE = 0x81000018
/** The software sealer's key file in the data folder. */
export const HOST_SOFTWARE_KEY_FILE = 'sealer.pem'

export interface HostSealerInit {
  dataDir: string
  /** The host's TPM (`device:/dev/tpmrm0`, `swtpm:…`); none: the software sealer. */
  tcti?: string | undefined
  handle?: number
  /**
   * Create the key (init, migration). Default `false`: the key and its record must be there,
   * a missing, corrupt or swapped record is refused (a node past its init never pins anew).
   */
  createIfMissing?: boolean
  logger?: Logger
}

/**
 * The TPM sealer at `tcti` (key pinned in `<dataDir>/tpm2-key.json`) or, without a TPM, the
 * software sealer (`<dataDir>/sealer.pem`, allowed here, loudly marked).
 */
export function hostSealer(o: HostSealerInit): Sealer {
  const common = {
    createIfMissing: o.createIfMissing ?? false,
    ...(o.logger ? { logger: o.logger } : {}),
  }
  if (o.tcti !== undefined) {
    return tpm2Sealer({
      tcti: o.tcti,
      handle: o.handle ?? HOST_SECRETS_TPM2_HANDLE,
      keyRecordFile: join(o.dataDir, TPM2_KEY_RECORD_FILE),
      requireKeyRecord: true,
      ...common,
    })
  }
  return softwareSealer({
    keyFile: join(o.dataDir, HOST_SOFTWARE_KEY_FILE),
    allowInsecure: true,
    ...common,
  })
}
