/**
 * `pi-node sign-release`: signs the release manifest of an installed tree. `install-pi.sh` runs
 * it after each install with the host's release key (ADR 0036); a release process that ships
 * an installed tree runs it with its own.
 */
import { UsageError, valueFlag } from '@digicap/cli-kit'
import { command } from './shared.ts'

export const signRelease = command({
  name: 'sign-release',
  summary: 'sign the release manifest of an installed tree (install script, release process)',
  usage: '--root <dir> --key <ed25519-private.pem> --release <name@version> --out <file>',
  description: `Lists the SHA-256 of every file under --root, signs the list with the Ed25519 key in --key,
writes the manifest to --out (0644, outside --root) and prints the release public key (hex).`,
  flags: {
    root: valueFlag('<dir>', 'the install root the manifest lists'),
    key: valueFlag('<pem-file>', 'the Ed25519 private key (PKCS#8 PEM)'),
    release: valueFlag('<name@version>', 'the release the manifest names'),
    out: valueFlag('<file>', 'where the manifest goes (outside --root)'),
  },
  async run(ctx) {
    const { root, key: keyFile, release, out } = ctx.flags
    if (!root || !keyFile || !release || !out) {
      throw new UsageError('sign-release needs --root, --key, --release and --out')
    }
    const { signInstalledRelease } = await import('@digicap/owner/node')
    const signed = await signInstalledRelease({ root, keyFile, release, out })
    ctx.result({ manifest: out, release, ...signed }, `${signed.publicKey}\n`)
  },
})
