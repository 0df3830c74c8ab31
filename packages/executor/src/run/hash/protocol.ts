/** Messages between the open and its hash worker (ADR 0049). */
export interface HashWorkerStart {
  readonly bundle: boolean
  readonly total: number
}
/** To the worker: plaintext chunks to hash then zero (transferred), or the end. */
export type HashWorkerRequest =
  | { readonly type: 'chunks'; readonly chunks: readonly Uint8Array[] }
  | { readonly type: 'end' }
/** From the worker: one `hashed` per `chunks` message, then the digest or a failure. */
export type HashWorkerAnswer =
  | { readonly type: 'hashed' }
  | {
      readonly type: 'digest'
      readonly range: { readonly start: number; readonly size: number } | undefined
      readonly sha256: Uint8Array
    }
