/**
 * The node software's release, as `init` pins it and `verify-install` checks it: the signed
 * manifest, the release key (Ed25519) and the install root; and its measurement into the
 * release PCR when the wrapping key's PCR policy covers that PCR.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { releasePublicKey, UsageError, verifyInstall } from '@digicap/cli-kit'
import { DEFAULT_RELEASE_PCR, measureRelease, releaseMeasurement } from '@digicap/keyguard'
import type { ReleaseConfig, SealerConfig } from './config.ts'

/** The release key as 64 hex digits: given as hex, or read from a PEM (or hex) file. */
export async function releaseKeyHex(text: string): Promise<string> {
  const keyText = /^[0-9a-fA-F]{64}$/.test(text) ? text : await readFile(text, 'utf8')
  const der = releasePublicKey(keyText).export({ type: 'spki', format: 'der' }) as Buffer
  return der.subarray(12).toString('hex')
}

/**
 * Checks the install under `release.root` (default `defaultRoot`: the app's own install)
 * against the manifest.
 * @throws {UsageError} (cli-kit's) when the manifest or the key is not given;
 *   `InstallTamperedError` (`INSTALL_TAMPERED`) naming a modified, missing or added file.
 * @example
 * ```ts
 * const { files, root } = await checkRelease(config.release, appRoot)
 * ```
 */
export async function checkRelease(release: ReleaseConfig | undefined, defaultRoot: string) {
  if (!release?.manifest || !release.key) {
    throw new UsageError('No release manifest and release key are pinned', {
      hint: 'pi-node init --release-manifest <file> --release-key <hex|pem-file> pins them (or set DIGICAP_RELEASE_MANIFEST and DIGICAP_RELEASE_KEY).',
    })
  }
  const root = resolve(release.root ?? defaultRoot)
  const key = releasePublicKey(await releaseKeyHex(release.key))
  const manifest = resolve(release.manifest)
  return { ...(await verifyInstall(root, manifest, key)), root, manifest }
}

/**
 * The release `init` pins, checked now (a wrong key or a tampered install fails init, not the
 * first start); undefined when neither manifest nor key is given.
 * @throws {UsageError} when only one of them is given; what {@link checkRelease} throws.
 */
export async function pinRelease(
  given: { manifest?: string | undefined; key?: string | undefined; root?: string | undefined },
  defaultRoot: string,
): Promise<ReleaseConfig | undefined> {
  const { manifest, key, root } = given
  if (manifest === undefined && key === undefined) return undefined
  if (manifest === undefined || key === undefined) {
    throw new UsageError('Give --release-manifest and --release-key together')
  }
  const release: ReleaseConfig = {
    manifest: resolve(manifest),
    key: await releaseKeyHex(key),
    ...(root !== undefined ? { root: resolve(root) } : {}),
  }
  await checkRelease(release, defaultRoot)
  return release
}

/**
 * Extends the manifest's digest into the release PCR of the sealer's TPM when the wrapping
 * key's PCR policy covers that PCR (otherwise nothing reads it: `not-covered`). Once per boot:
 * a PCR already measured is `already`.
 * @throws {UsageError} when the policy covers the release PCR and no manifest is given.
 */
export async function measureInstalledRelease(
  sealer: SealerConfig | undefined,
  release: ReleaseConfig | undefined,
) {
  const pcr = release?.pcr ?? DEFAULT_RELEASE_PCR
  if (sealer?.kind !== 'tpm2' || !sealer.pcrs?.includes(pcr)) {
    return { pcr, state: 'not-covered' as const }
  }
  if (release?.manifest === undefined) {
    throw new UsageError(`--pcr-policy covers the release PCR ${pcr}: pin the release too`, {
      hint: 'Pass --release-manifest and --release-key (verify-install measures that manifest into the PCR at each start).',
    })
  }
  const digest = releaseMeasurement(await readFile(release.manifest))
  return measureRelease({ tcti: sealer.tcti, pcr, digest })
}
