/** Capsule and grant ids as they appear in file names. */
import { InvalidArgumentError } from '@digicap/capsule-core/light'

const ID = /^[A-Za-z0-9_-]{1,128}$/
const HEX_ID = /^0x[0-9a-fA-F]+$/

/**
 * Checks an id (`0x`-hex such as a bytes32, or a CID-like token: letters, digits, `_`, `-`,
 * at most 128 characters) and returns its canonical form (`0x`-hex is lowercased so that
 * `0xAB…` and `0xab…` name the same capsule or grant).
 * @throws {InvalidArgumentError} for anything else (path separators, dots, empty, too long).
 */
export function canonicalId(kind: 'capsuleId' | 'grantId', id: unknown): string {
  if (typeof id !== 'string' || !ID.test(id)) {
    throw new InvalidArgumentError(`${kind} is not a valid id`, {
      details: { kind, length: typeof id === 'string' ? id.length : undefined },
      hint: 'Use 0x-hex (e.g. a bytes32) or letters, digits, "_" and "-" (at most 128).',
    })
  }
  return HEX_ID.test(id) ? id.toLowerCase() : id
}
