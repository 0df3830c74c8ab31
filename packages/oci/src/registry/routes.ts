/** The distribution-spec paths the endpoint reads, and the names it accepts in them. */
import { isSha256Digest, type Sha256Digest } from '../encoding.ts'
import { OciRegistryError } from '../errors.ts'

// distribution-spec "Pulling manifests": the <name> and <reference> grammars.
const NAME_RE = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/
const MAX_NAME_LENGTH = 255

export type Route =
  | { kind: 'base' }
  | { kind: 'manifest'; name: string; reference: { tag: string } | { digest: Sha256Digest } }
  | { kind: 'blob'; name: string; digest: Sha256Digest }

/** The registry error of a request the spec's grammar refuses. */
export function registryError(
  registryCode: string,
  status: number,
  message: string,
  details: Record<string, unknown> = {},
): OciRegistryError {
  return new OciRegistryError(message, { details: { registryCode, status, ...details } })
}

function digestOrThrow(value: string): Sha256Digest {
  if (isSha256Digest(value)) return value
  throw registryError('DIGEST_INVALID', 400, 'Not a sha256 digest', { digest: value.slice(0, 80) })
}

/**
 * Routes a request path.
 * @throws {OciRegistryError} `NAME_INVALID`, `DIGEST_INVALID`, `MANIFEST_INVALID` (bad tag), or
 *   `NOT_FOUND`-like `UNSUPPORTED` (404) for any other path.
 */
export function route(pathname: string): Route {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'base' }
  const match = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(pathname)
  if (!match)
    throw registryError('UNSUPPORTED', 404, 'No such endpoint', { path: pathname.slice(0, 120) })
  const [, name = '', kind, ref = ''] = match
  if (name.length > MAX_NAME_LENGTH || !NAME_RE.test(name)) {
    throw registryError('NAME_INVALID', 400, 'Invalid repository name', { name: name.slice(0, 80) })
  }
  if (kind === 'blobs') return { kind: 'blob', name, digest: digestOrThrow(ref) }
  if (ref.includes(':'))
    return { kind: 'manifest', name, reference: { digest: digestOrThrow(ref) } }
  if (!TAG_RE.test(ref)) {
    throw registryError('MANIFEST_INVALID', 400, 'Invalid tag', { tag: ref.slice(0, 80) })
  }
  return { kind: 'manifest', name, reference: { tag: ref } }
}
