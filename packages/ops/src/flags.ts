/**
 * `@digicap/ops/flags`: the ops port's flags, shared by both daemons' `serve` — off unless a
 * port is given, loopback unless forced. Light: no metrics or HTTP code loads here.
 */
import { positiveInteger, switchFlag, valueFlag, wholeNumber } from '@digicap/cli-kit'

export const OPS_FLAGS = {
  'ops-port': valueFlag(
    '<port>',
    'serve /metrics and /healthz (pi-node: and the status page) on this port\n(env DIGICAP_OPS_PORT; off by default; 0 picks a free one)',
    { parse: wholeNumber, env: 'DIGICAP_OPS_PORT', group: 'Operations' },
  ),
  'ops-host': valueFlag(
    '<host>',
    "the ops port's interface (env DIGICAP_OPS_HOST; default 127.0.0.1)",
    {
      env: 'DIGICAP_OPS_HOST',
      group: 'Operations',
    },
  ),
  'ops-public': switchFlag('allow a non-loopback --ops-host (exposes metrics and status)', {
    group: 'Operations',
  }),
  'ops-allowed-host': valueFlag(
    '<host,...>',
    'more Host names the ops port answers (env DIGICAP_OPS_ALLOWED_HOSTS; `name` or\n`name:port`, comma-separated; 127.0.0.1, localhost and [::1] at the port always;\nany other Host gets 421, against DNS rebinding)',
    {
      parse: (text: string) =>
        text
          .split(',')
          .map((h) => h.trim())
          .filter((h) => h !== ''),
      env: 'DIGICAP_OPS_ALLOWED_HOSTS',
      group: 'Operations',
    },
  ),
  'health-cache-ms': valueFlag(
    '<ms>',
    'how long /healthz and the status page reuse a TPM probe or chain answer\n(env DIGICAP_HEALTH_CACHE_MS; default 10000)',
    { parse: positiveInteger, env: 'DIGICAP_HEALTH_CACHE_MS', group: 'Operations' },
  ),
} as const

/** The pi-node's `serve`: the ops flags and the tpm check's acceptance of an insecure sealer. */
export const PI_NODE_OPS_FLAGS = {
  ...OPS_FLAGS,
  'allow-software-sealer': switchFlag(
    "/healthz's tpm check passes with a sealer that is not hardware-backed (software key\nfile, swtpm; env DIGICAP_ALLOW_SOFTWARE_SEALER=1); without it that check fails",
    { group: 'Operations' },
  ),
} as const

/** The ops port's options from the parsed {@link OPS_FLAGS} (`startPiNodeOps`, `startExecutorOps`). */
export function opsOptionsOf(flags: {
  'ops-port'?: number | undefined
  'ops-host'?: string | undefined
  'ops-public'?: boolean
  'ops-allowed-host'?: string[] | undefined
  'health-cache-ms'?: number | undefined
  'allow-software-sealer'?: boolean
}) {
  return {
    port: flags['ops-port'],
    host: flags['ops-host'],
    allowPublic: flags['ops-public'] === true,
    allowedHosts: flags['ops-allowed-host'],
    healthCacheMs: flags['health-cache-ms'],
    allowSoftwareSealer: flags['allow-software-sealer'] === true,
  }
}

/** Where `serve` writes the ops port's address while it runs (`status` reads it). */
export const OPS_FILE = 'ops.json'
