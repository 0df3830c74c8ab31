/**
 * `pi-node verify-install`: checks, before `serve` starts (the systemd unit's `ExecStartPre`),
 * that the node software on disk is the software that was released: every file's SHA-256
 * against a manifest signed by the release key. A modified, missing or added file makes it
 * fail (exit 1) naming the file, so the service does not start.
 */

import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { releasePublicKey, UsageError, valueFlag, verifyInstall } from '@digicap/cli-kit'
import { command } from './shared.ts'

/** The install root when none is given: the folder above this app's `dist/` or `src/`. */
function defaultRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
}

export const verifyInstallCommand = command({
  name: 'verify-install',
  summary: 'check the installed node software against the signed release manifest',
  usage: '--manifest <file> --release-key <hex|pem-file> [--root <dir>]',
  description: `Checks the release manifest's Ed25519 signature with the release key, then the SHA-256
of every file under the install root (the app and its dependencies). A modified, missing
or added file fails with error[INSTALL_TAMPERED] naming the file. The systemd unit runs it
before serve (ExecStartPre), so a tampered install does not start.`,
  flags: {
    manifest: valueFlag('<file>', 'the signed release manifest', {
      env: 'DIGICAP_RELEASE_MANIFEST',
    }),
    'release-key': valueFlag('<hex|file>', 'the release public key: 64 hex digits or a PEM file', {
      env: 'DIGICAP_RELEASE_KEY',
    }),
    root: valueFlag('<dir>', 'the install root (default: this install)'),
  },
  async run(ctx) {
    const { flags } = ctx
    if (!flags.manifest || !flags['release-key']) {
      throw new UsageError('verify-install needs --manifest and --release-key', {
        hint: 'pi-node verify-install --manifest /usr/local/lib/pi-node/release.json --release-key <hex>',
      })
    }
    const keyText = /^[0-9a-fA-F]{64}$/.test(flags['release-key'])
      ? flags['release-key']
      : await readFile(flags['release-key'], 'utf8')
    const root = resolve(flags.root ?? defaultRoot())
    const result = await verifyInstall(root, resolve(flags.manifest), releasePublicKey(keyText))
    ctx.result(
      { verified: { ...result, root } },
      `verified ${result.release}: ${result.files} files under ${root} match the signed manifest\n`,
    )
  },
})
