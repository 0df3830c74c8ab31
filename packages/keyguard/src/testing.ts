/**
 * @packageDocumentation
 *
 * `@digicap/keyguard/testing` — the swtpm starter, which lives in `@digicap/tpm/testing`
 * (shared with `@digicap/attestation`) and is re-exported here for existing callers.
 */
export type { StartSwtpmOptions, Swtpm } from '@digicap/tpm/testing'
export { startSwtpm } from '@digicap/tpm/testing'
