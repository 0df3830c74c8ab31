/**
 * Signs the release manifest of an installed pi-node (the release process, on the machine that
 * holds the release key — never on the Pi):
 *
 *   node scripts/sign-release.ts <install-root> <name@version> <ed25519-private.pem> > release.json
 *
 * Prints the manifest (JSON) on stdout and the release public key (hex, for
 * DIGICAP_RELEASE_KEY) on stderr.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createReleaseManifest } from '@digicap/cli-kit'

const [root, release, keyFile] = process.argv.slice(2)
if (!root || !release || !keyFile) {
  process.stderr.write(
    'usage: node scripts/sign-release.ts <install-root> <name@version> <private.pem>\n',
  )
  process.exit(2)
}
const key = createPrivateKey(await readFile(keyFile))
const manifest = await createReleaseManifest(root, release, key)
process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`)
const raw = (createPublicKey(key).export({ format: 'der', type: 'spki' }) as Buffer).subarray(12)
process.stderr.write(`release key: ${raw.toString('hex')}\n`)
