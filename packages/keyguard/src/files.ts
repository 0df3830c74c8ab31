/**
 * `@digicap/keyguard/files`: what a command that only reads a keyguard's folder needs — the
 * owner file's public parts, the key store and the sealers (their public key and description;
 * unwrapping works too). None of its modules loads capsule-core's codecs and curves, the
 * mnemonic code or Ed25519, so `pi-node status` starts without them (ADR 0051). The same
 * objects as `@digicap/keyguard/local` and the main entry, which re-export them.
 */

export type { P256PublicKey } from '@digicap/tpm'
export type { OwnerInfo } from './recovery/owner-file.ts'
export { readOwner } from './recovery/owner-file.ts'
export type { Sealer, SealerDescription, SealerPublicKey } from './sealers/sealer.ts'
export type { SoftwareSealerInit } from './sealers/software-sealer.ts'
export { softwareSealer } from './sealers/software-sealer.ts'
export { TPM2_KEY_RECORD_FILE } from './sealers/tpm2-key-record.ts'
export type { Tpm2SealerInit } from './sealers/tpm2-sealer.ts'
export { tpm2Sealer } from './sealers/tpm2-sealer.ts'
export type { KeyRecord, KeyStore } from './store/key-store.ts'
export { createKeyStore } from './store/key-store.ts'
export type { Logger } from './types.ts'
