/**
 * The node software's release, as `init` pins it and `verify-install` checks it: the signed
 * manifest, the release key (Ed25519) and the install root. Flags, then the environment
 * (`DIGICAP_RELEASE_MANIFEST`, `DIGICAP_RELEASE_KEY`, `DIGICAP_RELEASE_ROOT`), then what `init`
 * wrote into the data folder's config.
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { releasePublicKey, UsageError, verifyInstall } from '@digicap/cli-kit'
import type { ReleaseConfig } from '@digicap/owner/node'

/** The install root when none is given: the folder above this app's `dist/` or `src/`. */
export function defaultRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
}

/** The release key as 64 hex digits: given as hex, or read from a PEM (or hex) file. */
export async function releaseKeyHex(text: string): Promise<string> {
  const keyText = /^[0-9a-fA-F]{64}$/.test(text) ? text : await readFile(text, 'utf8')
  const der = releasePublicKey(keyText).export({ type: 'spki', format: 'der' }) as Buffer
  return der.subarray(12).toString('hex')
}

/** The PCR list of `--pcr-policy`: `0-7,15` or `0,1,2,7`. */
export function pcrList(text: string, flag: string): number[] {
  const out = new Set<number>()
  for (const part of text.split(',')) {
    const m = /^\s*(\d{1,2})(?:-(\d{1,2}))?\s*$/.exec(part)
    const from = Number(m?.[1])
    const to = Number(m?.[2] ?? m?.[1])
    if (!m || from > to || to > 23) {
      throw new UsageError(`--${flag} must list PCRs 0–23, e.g. 0-7,15`, {
        details: { value: text.slice(0, 100) },
      })
    }
    for (let p = from; p <= to; p++) out.add(p)
  }
  return [...out].sort((a, b) => a - b)
}

/**
 * Checks the install under `release.root` (default: this install) against the manifest.
 * @throws {UsageError} when the manifest or the key is not given; `INSTALL_TAMPERED`.
 */
export async function checkRelease(release: ReleaseConfig | undefined) {
  if (!release?.manifest || !release.key) {
    throw new UsageError('No release manifest and release key are pinned', {
      hint: 'pi-node init --release-manifest <file> --release-key <hex|pem-file> pins them (or set DIGICAP_RELEASE_MANIFEST and DIGICAP_RELEASE_KEY).',
    })
  }
  const root = resolve(release.root ?? defaultRoot())
  const key = releasePublicKey(await releaseKeyHex(release.key))
  const manifest = resolve(release.manifest)
  return { ...(await verifyInstall(root, manifest, key)), root, manifest }
}
