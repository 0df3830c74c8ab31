/**
 * `pi-node verify-install`: checks, before `serve` starts (the systemd unit's `ExecStartPre`),
 * that the node software on disk is the software that was released: every file's SHA-256
 * against a manifest signed by the release key. A modified, missing or added file makes it
 * fail (exit 1) naming the file, so the service does not start. With `--measure` the
 * manifest's digest is then extended into the release PCR (once per boot), which a PCR-bound
 * wrapping key's policy covers.
 */
import { NotInitialisedError, switchFlag, valueFlag } from '@digicap/cli-kit'
import { loadConfig } from '../config.ts'
import { appRoot, command, dataDirOf } from './shared.ts'

/** The data folder's config, or none yet (verify-install may run before init). */
async function configIfAny(dataDir: string, env: NodeJS.ProcessEnv) {
  return loadConfig(dataDir, env).catch((err: unknown) => {
    if (err instanceof NotInitialisedError) return undefined
    throw err
  })
}

export const verifyInstallCommand = command({
  name: 'verify-install',
  summary: 'check the installed node software against the signed release manifest',
  usage: '[--manifest <file>] [--release-key <hex|pem-file>] [--root <dir>] [--measure]',
  description: `Checks the release manifest's Ed25519 signature with the release key, then the SHA-256
of every file under the install root (the app and its dependencies). A modified, missing
or added file fails with error[INSTALL_TAMPERED] naming the file. The systemd unit runs it
before serve (ExecStartPre), so a tampered install does not start. Manifest, key and root
default to what init pinned in the data folder's config, else to the manifest the install
script signed next to the install (<install-root>.release.json and .release-key).
--measure: then extends the manifest's SHA-256 into the release PCR (default 15) of the
node's TPM, once per boot, when the wrapping key's PCR policy covers that PCR.`,
  flags: {
    manifest: valueFlag('<file>', 'the signed release manifest', {
      env: 'DIGICAP_RELEASE_MANIFEST',
    }),
    'release-key': valueFlag('<hex|file>', 'the release public key: 64 hex digits or a PEM file', {
      env: 'DIGICAP_RELEASE_KEY',
    }),
    root: valueFlag('<dir>', 'the install root (default: this install)', {
      env: 'DIGICAP_RELEASE_ROOT',
    }),
    measure: switchFlag('extend the manifest digest into the release PCR (once per boot)'),
  },
  async run(ctx) {
    const { flags } = ctx
    const config = await configIfAny(dataDirOf(ctx), ctx.env)
    const { checkRelease, measureInstalledRelease, releaseToVerify } = await import(
      '@digicap/owner/node'
    )
    const { manifest, 'release-key': key, root } = flags
    const release = await releaseToVerify(config?.release, { manifest, key, root }, appRoot())
    const result = await checkRelease(release, appRoot())
    const measured = flags.measure
      ? await measureInstalledRelease(config?.sealer, { ...release, manifest: result.manifest })
      : undefined
    ctx.result(
      { verified: result, ...(measured ? { measured } : {}) },
      `verified ${result.release}: ${result.files} files under ${result.root} match the signed manifest\n` +
        (measured
          ? measured.state === 'not-covered'
            ? `not measured: the wrapping key's policy does not cover PCR ${measured.pcr}\n`
            : `measured into PCR ${measured.pcr} (${measured.state === 'already' ? 'already, earlier this boot' : 'now'})\n`
          : ''),
    )
  },
})
