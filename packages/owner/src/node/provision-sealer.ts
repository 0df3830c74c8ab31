/**
 * The sealer as `init` and `recover` set it up: the key created (PCR-bound when the config
 * names PCRs) and, for a PCR-bound key, the boot's PCR values approved at once with the words
 * in hand, so the owner file can be unwrapped right after. The release PCR is approved at the
 * value it will hold once `verify-install --measure` measured the pinned manifest (it is
 * measured at each boot, before `serve`), not at its value now.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '@digicap/cli-kit'
import {
  DEFAULT_RELEASE_PCR,
  derivePolicyAuthKey,
  expectedReleasePcr,
  keyPolicyAuthorize,
  type Logger,
  releaseMeasurement,
  type Sealer,
  TPM2_KEY_RECORD_FILE,
} from '@digicap/keyguard/local'
import { createSealer } from './components.ts'
import type { ReleaseConfig, SealerConfig } from './config.ts'

/**
 * The value to approve for the release PCR when the key covers it and a manifest is pinned.
 * `pcrs` undefined: any (the approval only takes the PCRs the key is bound to).
 * @throws {ConfigError} if the pinned manifest cannot be read.
 */
export async function releasePcrExpectation(
  pcrs: readonly number[] | undefined,
  release: ReleaseConfig | undefined,
): Promise<Map<number, Uint8Array>> {
  const pcr = release?.pcr ?? DEFAULT_RELEASE_PCR
  if ((pcrs !== undefined && !pcrs.includes(pcr)) || release?.manifest === undefined)
    return new Map()
  let bytes: Buffer
  try {
    bytes = await readFile(release.manifest)
  } catch (cause) {
    throw new ConfigError('The release manifest cannot be read', {
      details: { manifest: release.manifest },
      hint: 'Give the signed release manifest (release.manifest, DIGICAP_RELEASE_MANIFEST).',
      cause,
    })
  }
  return new Map([[pcr, expectedReleasePcr(releaseMeasurement(bytes))]])
}

/** Creates (or finds) the sealer's key; a PCR-bound one gets its first approval from `mnemonic`. */
export async function provisionSealer(
  config: SealerConfig,
  o: {
    dataDir: string
    mnemonic: string
    logger?: Logger
    release?: ReleaseConfig | undefined
    /** Replace a TPM key at the handle whose policy does not fit (init --force). */
    replaceUnfitKey?: boolean
    /** The TPM makers' CA bundle (`keyguard.ekRoots`): the new key's TPM is checked (ADR 0097). */
    ekRoots?: string | undefined
  },
): Promise<Sealer> {
  const common = {
    createIfMissing: true,
    replaceUnfitKey: o.replaceUnfitKey === true,
    dataDir: o.dataDir,
    ekRoots: o.ekRoots,
    ...(o.logger ? { logger: o.logger } : {}),
  }
  if (config.kind !== 'tpm2' || config.pcrs === undefined) {
    const sealer = createSealer(config, common)
    await sealer.publicKey()
    return sealer
  }
  const authKey = await derivePolicyAuthKey(o.mnemonic)
  authKey.privateKey.fill(0)
  const sealer = createSealer(config, { ...common, policyAuthKey: authKey.publicKey })
  await sealer.publicKey()
  const expected = await releasePcrExpectation(config.pcrs, o.release)
  await keyPolicyAuthorize(config.tcti, join(o.dataDir, TPM2_KEY_RECORD_FILE), o.mnemonic, {
    expected,
  })
  o.logger?.info('keyguard: approved the PCR values of this boot for the wrapping key', {
    pcrs: config.pcrs,
    ...(expected.size > 0 ? { releasePcr: [...expected.keys()][0] } : {}),
  })
  return sealer
}
