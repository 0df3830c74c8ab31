/**
 * What the node apps' `init` (and pi-node's `recover`) ask alike: the three contract
 * addresses, and the paper words shown once.
 */
import { UsageError } from '../errors.ts'
import { type FlagExtras, switchFlag, valueFlag } from './flags.ts'
import { address, pcrList } from './values.ts'

const NAMES = ['capsule-registry', 'node-registry', 'access-controller'] as const

/** `--capsule-registry`, `--node-registry`, `--access-controller` (addresses); `help` on the first. */
export function contractFlags<const O extends FlagExtras = Record<never, never>>(
  help: string,
  more?: O,
) {
  const flag = (h: string) => valueFlag('<addr>', h, { parse: address, ...(more as O) })
  return {
    'capsule-registry': flag(help),
    'node-registry': flag(''),
    'access-controller': flag(''),
  }
}

/**
 * The three contract addresses from the flags of {@link contractFlags}; undefined when none is given.
 * @throws {UsageError} when some but not all are given, naming the missing ones.
 */
export function contractsOf(
  flags: Partial<Record<(typeof NAMES)[number], string | undefined>>,
): { capsuleRegistry: string; nodeRegistry: string; accessController: string } | undefined {
  const missing = NAMES.filter((n) => !flags[n])
  if (missing.length === NAMES.length) return undefined
  if (missing.length > 0) {
    throw new UsageError('Give all three contract addresses', {
      details: { missing: missing.map((n) => `--${n}`) },
      hint: 'Pass --capsule-registry, --node-registry and --access-controller.',
    })
  }
  const [capsuleRegistry, nodeRegistry, accessController] = NAMES.map((n) => flags[n] as string)
  return { capsuleRegistry, nodeRegistry, accessController } as {
    capsuleRegistry: string
    nodeRegistry: string
    accessController: string
  }
}

/**
 * `--release-manifest`, `--release-key`, `--release-root` (env `DIGICAP_RELEASE_*`): the signed
 * release an `init` pins for `verify-install`.
 */
export function releaseFlags() {
  return {
    'release-manifest': valueFlag('<file>', 'the signed release manifest verify-install checks', {
      env: 'DIGICAP_RELEASE_MANIFEST',
    }),
    'release-key': valueFlag('<hex|file>', 'the release public key to pin (hex or PEM file)', {
      env: 'DIGICAP_RELEASE_KEY',
    }),
    'release-root': valueFlag(
      '<dir>',
      'the install root the manifest lists (default: this install)',
      {
        env: 'DIGICAP_RELEASE_ROOT',
      },
    ),
  }
}

/**
 * `--pcr-policy`, `--no-pcr-policy` and the release flags: how a new TPM wrapping key is bound
 * (pi-node's init, and recover on a new Pi), in help `group`.
 */
export function keyBindingFlags(group = 'Options') {
  return {
    'pcr-policy': valueFlag(
      '<pcrs>',
      'bind the new TPM wrapping key to these PCRs (e.g. 0-7,15;\nenv DIGICAP_PCR_POLICY); their values now are approved at once.\nDefault on a device: TPM: 15 (the verified release)',
      { env: 'DIGICAP_PCR_POLICY', parse: pcrList, group },
    ),
    'no-pcr-policy': switchFlag(
      'an unbound TPM wrapping key (development: it unwraps\nwhatever software runs)',
      { group },
    ),
    ...releaseFlags(),
  }
}

/** The paper words, numbered, between two warnings: what `init` writes once on stderr. */
export function mnemonicBanner(mnemonic: string, warning: string): string {
  const words = mnemonic.split(' ').map((w, i) => `${String(i + 1).padStart(2)}. ${w}`)
  return (
    '\n=== RECOVERY MNEMONIC: write these 24 words on paper NOW. They are shown only once. ===\n' +
    `${words.join('\n')}\n=== ${warning} ===\n\n`
  )
}
