/**
 * Recipients of a layer's private options. ocicrypt calls them key wrappers: each has a
 * protocol name and an annotation `org.opencontainers.image.enc.keys.<protocol>` whose value is
 * the base64 of what it wrapped (several wraps of one protocol are joined with `,`).
 */

/** Wraps private options for one protocol (`jwe`, `provider.digicap`). */
export interface LayerRecipient {
  readonly protocol: string
  /** Wraps the private options JSON; the result becomes one base64 annotation entry. */
  wrap(privateOptions: Uint8Array): Promise<Uint8Array>
}

/** Unwraps private options of one protocol with a key its holder has. */
export interface LayerUnwrapper {
  readonly protocol: string
  /**
   * Returns the private options JSON, or throws a typed error (`OCI_KEY` when none of its
   * keys fits, `OCI_FORMAT` / `OCI_INTEGRITY` when the payload is bad).
   */
  unwrap(payload: Uint8Array): Promise<Uint8Array>
}
