/**
 * @packageDocumentation
 *
 * `@digicap/sdk/seal` — seal bytes under a policy and publish the capsule in one call, from
 * any machine that holds the keyguard's public card and the owner's account (the keyguard's
 * private key never leaves its TPM). Built on `@digicap/owner`.
 *
 * @example
 * ```ts
 * import { localSigner } from '@digicap/sdk'
 * import { sealAndPublish } from '@digicap/sdk/seal'
 *
 * const capsule = await sealAndPublish({ network: 'local', owner: localSigner(ownerKey), keyguard: card,
 *   data: new TextEncoder().encode('hello'), policy: 'maxRuns(3)', peers: [keyguardAddr] })
 * console.log(capsule.cid) // served from here until capsule.stop()
 * ```
 */

export { parseReceiver } from '@digicap/capsule-core'
export type {
  PublishedCapsule,
  SealAndPublishParameters,
  SealCode,
} from './seal/seal-and-publish.ts'
export { sealAndPublish } from './seal/seal-and-publish.ts'
