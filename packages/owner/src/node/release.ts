/**
 * The node software's release, as `init` pins it and `verify-install` checks it: the signed
 * manifest, the release key (Ed25519) and the install root; and its measurement into the
 * release PCR when the wrapping key's PCR policy covers that PCR.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { chmod, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { isAbsolute, relative, resolve, sep } from 'node:path'
import {
  createReleaseManifest,
  releasePublicKey,
  UsageError,
  verifyInstall,
} from '@digicap/cli-kit'
import { DEFAULT_RELEASE_PCR, measureRelease, releaseMeasurement } from '@digicap/keyguard/local'
import type { ReleaseConfig, SealerConfig } from './config.ts'

/** The release key as 64 hex digits: given as hex, or read from a PEM (or hex) file. */
export async function releaseKeyHex(text: string): Promise<string> {
  const keyText = /^[0-9a-fA-F]{64}$/.test(text) ? text : await readFile(text, 'utf8')
  const der = releasePublicKey(keyText).export({ type: 'spki', format: 'der' }) as Buffer
  return der.subarray(12).toString('hex')
}

/**
 * The folder an app was installed into: the parent of the outermost `node_modules` above
 * `appDir` (`/usr/local/lib/digicap/pi-node` for an app under its `node_modules`), so a
 * manifest of it covers the app AND its dependencies; `appDir` itself when it is not
 * installed (a workspace checkout).
 */
export function installRootOf(appDir: string): string {
  const abs = resolve(appDir)
  const at = abs.indexOf(`${sep}node_modules${sep}`)
  return at > 0 ? abs.slice(0, at) : abs
}

/** The files `deploy/install-pi.sh` writes next to an install root (outside it). */
export function installReleaseFiles(installRoot: string) {
  return { manifest: `${installRoot}.release.json`, key: `${installRoot}.release-key` }
}

/**
 * The release the install script signed and left next to the install (`<root>.release.json`,
 * `<root>.release-key`), or undefined when it left none (a workspace checkout, an install
 * from before the script signed).
 */
export async function installedRelease(appDir: string): Promise<ReleaseConfig | undefined> {
  const root = installRootOf(appDir)
  const files = installReleaseFiles(root)
  const present = async (p: string) => (await stat(p).catch(() => undefined))?.isFile() === true
  if (!(await present(files.manifest)) || !(await present(files.key))) return undefined
  return { manifest: files.manifest, key: (await readFile(files.key, 'utf8')).trim(), root }
}

/**
 * The release `verify-install` checks: the given flags over the release pinned in the config;
 * when neither names a manifest, the one the install script signed beside the install.
 */
export async function releaseToVerify(
  pinned: ReleaseConfig | undefined,
  given: { manifest?: string | undefined; key?: string | undefined; root?: string | undefined },
  appDir: string,
): Promise<ReleaseConfig> {
  const flags = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined))
  const release: ReleaseConfig = { ...pinned, ...flags }
  if (release.manifest !== undefined) return release
  return { ...(await installedRelease(appDir)), ...release }
}

/**
 * Signs the manifest of the tree at `root` with the Ed25519 private key in `keyFile` (PKCS#8
 * PEM) and writes it to `out` (mode 0644: the service user reads it), outside `root`.
 * @returns the release public key (64 hex digits) and the number of files listed.
 * @throws {UsageError} when `out` is inside `root`.
 */
export async function signInstalledRelease(o: {
  root: string
  keyFile: string
  release: string
  out: string
}): Promise<{ publicKey: string; files: number }> {
  const inside = relative(resolve(o.root), resolve(o.out))
  if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
    throw new UsageError('The manifest must live outside the install root it lists', {
      details: { root: o.root, out: o.out },
    })
  }
  const privateKey = createPrivateKey(await readFile(o.keyFile))
  const manifest = await createReleaseManifest(resolve(o.root), o.release, privateKey)
  const tmp = `${o.out}.tmp-${process.pid}`
  await writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`)
  await chmod(tmp, 0o644)
  await rename(tmp, o.out)
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }) as Buffer
  return { publicKey: der.subarray(12).toString('hex'), files: Object.keys(manifest.files).length }
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
  const root = resolve(release.root ?? installRootOf(defaultRoot))
  const key = releasePublicKey(await releaseKeyHex(release.key))
  const manifest = resolve(release.manifest)
  return { ...(await verifyInstall(root, manifest, key)), root, manifest }
}

/**
 * The release `init` pins, checked now (a wrong key or a tampered install fails init, not the
 * first start). When neither manifest nor key is given: the one the install script signed
 * next to this install ({@link installedRelease}), else undefined.
 * @throws {UsageError} when only one of them is given; what {@link checkRelease} throws.
 */
export async function pinRelease(
  given: { manifest?: string | undefined; key?: string | undefined; root?: string | undefined },
  defaultRoot: string,
): Promise<ReleaseConfig | undefined> {
  const { manifest, key, root } = given
  if (manifest === undefined && key === undefined) {
    const installed = await installedRelease(defaultRoot)
    if (installed !== undefined) await checkRelease(installed, defaultRoot)
    return installed
  }
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
 * The PCRs a new TPM wrapping key is bound to: `asked.pcrs` (`--pcr-policy`), none with
 * `asked.none` (`--no-pcr-policy`), else by default (ADR 0036): on a hardware TPM
 * (`device:`), the release PCR when a release is pinned (the install script signs one), and
 * a refusal when none is, rather than a key silently left unbound. An emulator (`swtpm:`),
 * the software sealer and the tools-only TCTIs stay unbound unless asked.
 * @throws {UsageError} for a `device:` TCTI without a release, or both flags.
 */
export function defaultPolicyPcrs(
  sealer: SealerConfig,
  release: ReleaseConfig | undefined,
  asked: { pcrs?: number[] | undefined; none?: boolean } = {},
): number[] | undefined {
  if (asked.none && asked.pcrs !== undefined) {
    throw new UsageError('Give --pcr-policy or --no-pcr-policy, not both')
  }
  if (asked.none) return undefined
  if (asked.pcrs !== undefined) return asked.pcrs
  if (sealer.kind !== 'tpm2' || !sealer.tcti.startsWith('device:')) return undefined
  if (release?.manifest !== undefined) return [release.pcr ?? DEFAULT_RELEASE_PCR]
  throw new UsageError(
    "A hardware TPM's wrapping key is bound to the verified release (PCR 15) by default, and no release manifest is pinned",
    {
      details: { tcti: sealer.tcti },
      hint: 'Install with deploy/install-pi.sh (it signs the release manifest), or pass --release-manifest and --release-key; --no-pcr-policy makes an unbound key (development only).',
    },
  )
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

/**
 * The sealer and release `recover` works with (ADR 0089). A new Pi (no config) gets what init
 * gives one: the pinned release (returned) and the default PCR binding of its new key. A re-run after a
 * crash keeps the config's, and refuses a `--pcr-policy` that says otherwise. Either way the
 * release is measured into its PCR, since a key bound to it unwraps only then.
 * `asked` holds the CLI's flags (`--release-*`, `--pcr-policy`, `--no-pcr-policy`).
 * @throws {UsageError} a `--pcr-policy` that differs from the config's binding; what
 *   {@link pinRelease}, {@link defaultPolicyPcrs} and {@link measureInstalledRelease} throw.
 */
export async function recoverSealerSetup(
  existing: { sealer: SealerConfig; release?: ReleaseConfig | undefined } | undefined,
  sealer: SealerConfig | undefined,
  asked: {
    'release-manifest'?: string | undefined
    'release-key'?: string | undefined
    'release-root'?: string | undefined
    'pcr-policy'?: number[] | undefined
    'no-pcr-policy'?: boolean | undefined
  },
  defaultRoot: string,
): Promise<{ sealer: SealerConfig | undefined; release: ReleaseConfig | undefined }> {
  // `release` is the new Pi's pin (the config keeps an existing node's).
  let release: ReleaseConfig | undefined
  if (existing === undefined && sealer !== undefined) {
    const { 'release-manifest': manifest, 'release-key': key, 'release-root': root } = asked
    release = await pinRelease({ manifest, key, root }, defaultRoot)
    const pcrs = defaultPolicyPcrs(sealer, release, {
      pcrs: asked['pcr-policy'],
      none: asked['no-pcr-policy'] === true,
    })
    if (pcrs !== undefined) sealer = { ...sealer, pcrs } as SealerConfig
  } else if (existing !== undefined) {
    const kept = existing.sealer.kind === 'tpm2' ? existing.sealer.pcrs : undefined
    const wanted = asked['no-pcr-policy'] ? [] : asked['pcr-policy']
    const key = (a: number[] | undefined) => [...(a ?? [])].sort((x, y) => x - y).join()
    if (wanted !== undefined && key(wanted) !== key(kept)) {
      throw new UsageError("--pcr-policy differs from this node's: recover keeps its PCR policy", {
        details: { asked: wanted, config: kept ?? null },
        hint: 'Drop the flag (the config in place says which PCRs the key is bound to).',
      })
    }
  }
  await measureInstalledRelease(sealer ?? existing?.sealer, release ?? existing?.release)
  return { sealer, release }
}
