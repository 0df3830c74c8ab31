/**
 * A read-only OCI distribution-spec endpoint (`GET`/`HEAD` of `/v2/`, manifests by tag or
 * digest, blobs with `Range`), on node:http, bound to 127.0.0.1 by default. Every manifest and
 * blob comes from a {@link BlobSource} and is checked against its digest before it is served
 * as complete (see `verify.ts` for how, per kind of request).
 */
import { createReadStream } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { DigicapError } from '@digicap/capsule-core'
import type { Sha256Digest } from '../encoding.ts'
import { OciRegistryError } from '../errors.ts'
import { MAX_JSON_BLOB_LENGTH } from '../layout/layout.ts'
import { MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST } from '../media-types.ts'
import type { BlobSource, Repositories } from './blob-source.ts'
import { parseRange } from './range.ts'
import { type Route, registryError, route } from './routes.ts'
import { readVerified, relayVerified, spoolVerified } from './verify.ts'

export interface RegistryHandlerOptions {
  repositories: Repositories
  /** Where `Range` requests spool a blob to check it (default: the OS temp dir). */
  spoolDir?: string
  /** Called with every error answered or every response cut short (for logs). */
  onError?: (error: DigicapError, request: { method: string; path: string }) => void
}

export interface RegistryServerOptions extends RegistryHandlerOptions {
  /** Default `127.0.0.1`: the endpoint is for the local container tools. */
  host?: string
  /** Default 0 (an ephemeral port). */
  port?: number
}

export interface RegistryServer {
  /** `http://host:port` */
  url: string
  port: number
  server: Server
  close(): Promise<void>
}

const API_VERSION_HEADER = { 'Docker-Distribution-API-Version': 'registry/2.0' }

async function sourceFor(repositories: Repositories, name: string): Promise<BlobSource> {
  const source =
    typeof repositories === 'function' ? await repositories(name) : repositories.get(name)
  if (!source) throw registryError('NAME_UNKNOWN', 404, 'Repository unknown', { name })
  return source
}

/** The error JSON body of the distribution spec. */
function errorBody(error: DigicapError): string {
  const code = String(error.details.registryCode ?? 'UNKNOWN')
  return JSON.stringify({
    errors: [{ code, message: error.shortMessage, detail: { ...error.details, code: error.code } }],
  })
}

/** Maps any failure to a `DigicapError` with a registry code and an HTTP status. */
function asRegistryError(error: unknown): DigicapError {
  if (error instanceof OciRegistryError) return error
  if (error instanceof DigicapError) {
    // The source failed or lied: the blob exists in name, the bytes are not it (502).
    const integrity = ['OCI_INTEGRITY', 'OCI_TRUNCATED', 'OCI_LIMIT'].includes(error.code)
    return new OciRegistryError(error.shortMessage, {
      cause: error,
      details: {
        ...error.details,
        registryCode: integrity ? 'DIGEST_INVALID' : 'BLOB_UNKNOWN',
        status: integrity ? 502 : 404,
        sourceCode: error.code,
      },
      ...(error.hint ? { hint: error.hint } : {}),
    })
  }
  return new OciRegistryError('The blob source failed', {
    cause: error,
    details: { registryCode: 'UNKNOWN', status: 502, reason: (error as Error)?.name },
  })
}

function writeChunk(res: ServerResponse, chunk: Uint8Array): Promise<void> {
  if (res.destroyed) return Promise.reject(new Error('client went away'))
  if (res.write(chunk)) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', gone)
      resolve()
    }
    const gone = () => {
      res.off('drain', done)
      reject(new Error('client went away'))
    }
    res.once('drain', done)
    res.once('close', gone)
  })
}

function manifestMediaType(bytes: Buffer): string {
  try {
    const json = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown }
    if (typeof json.mediaType === 'string' && /^[\w.+-]+\/[\w.+-]+$/.test(json.mediaType)) {
      return json.mediaType
    }
    return Array.isArray(json.manifests) ? MEDIA_TYPE_IMAGE_INDEX : MEDIA_TYPE_IMAGE_MANIFEST
  } catch {
    return MEDIA_TYPE_IMAGE_MANIFEST
  }
}

async function blobSize(source: BlobSource, digest: Sha256Digest, code: string): Promise<number> {
  const size = await source.size(digest)
  if (size === undefined) {
    throw registryError(code, 404, code === 'BLOB_UNKNOWN' ? 'Blob unknown' : 'Manifest unknown', {
      digest,
    })
  }
  return size
}

async function serveManifest(
  res: ServerResponse,
  head: boolean,
  source: BlobSource,
  reference: Extract<Route, { kind: 'manifest' }>['reference'],
  signal: AbortSignal,
): Promise<void> {
  const digest = 'digest' in reference ? reference.digest : await source.resolveTag(reference.tag)
  if (!digest) throw registryError('MANIFEST_UNKNOWN', 404, 'Manifest unknown', { ...reference })
  const size = await blobSize(source, digest, 'MANIFEST_UNKNOWN')
  const bytes = await readVerified(
    source.open(digest, { signal }),
    { digest, size },
    MAX_JSON_BLOB_LENGTH,
  )
  res.writeHead(200, {
    ...API_VERSION_HEADER,
    'Content-Type': manifestMediaType(bytes),
    'Content-Length': bytes.length,
    'Docker-Content-Digest': digest,
  })
  res.end(head ? undefined : bytes)
}

async function serveBlob(
  req: IncomingMessage,
  res: ServerResponse,
  head: boolean,
  source: BlobSource,
  digest: Sha256Digest,
  signal: AbortSignal,
  spoolDir: string | undefined,
): Promise<void> {
  const size = await blobSize(source, digest, 'BLOB_UNKNOWN')
  const headers = {
    ...API_VERSION_HEADER,
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
  }
  const rangeHeader = req.headers.range
  if (head || rangeHeader === undefined) {
    if (head) {
      res.writeHead(200, { ...headers, 'Content-Length': size })
      return void res.end()
    }
    // The status goes out with the first byte: a source that fails (or lies within its first
    // chunk) before that is answered with an error JSON instead of a cut connection.
    const start = () => {
      if (!res.headersSent) res.writeHead(200, { ...headers, 'Content-Length': size })
    }
    await relayVerified(source.open(digest, { signal }), { digest, size }, (c) => {
      start()
      return writeChunk(res, c)
    })
    start()
    res.end()
    return
  }
  const range = parseRange(rangeHeader, size)
  if (!range) {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}`, 'Content-Length': 0 })
    return void res.end()
  }
  const spooled = await spoolVerified(source.open(digest, { signal }), { digest, size }, spoolDir)
  try {
    res.writeHead(206, {
      ...headers,
      'Content-Range': `bytes ${range.start}-${range.end}/${size}`,
      'Content-Length': range.end - range.start + 1,
    })
    for await (const chunk of createReadStream(spooled.path, range)) {
      await writeChunk(res, chunk as Buffer)
    }
    res.end()
  } finally {
    await spooled.dispose()
  }
}

/**
 * The endpoint as a request handler, to mount on an existing node:http server.
 * Never throws: every failure is an error JSON response, or a response cut short when the
 * headers are already sent (a blob that failed its check mid-stream).
 */
export function registryHandler(
  options: RegistryHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const method = req.method ?? 'GET'
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const controller = new AbortController()
    res.once('close', () => controller.abort())
    try {
      if (method !== 'GET' && method !== 'HEAD') {
        throw registryError('UNSUPPORTED', 405, 'This registry is read-only', { method })
      }
      const head = method === 'HEAD'
      const target = route(path)
      if (target.kind === 'base') {
        res.writeHead(200, { ...API_VERSION_HEADER, 'Content-Type': 'application/json' })
        return void res.end(head ? undefined : '{}')
      }
      const source = await sourceFor(options.repositories, target.name)
      if (target.kind === 'manifest') {
        await serveManifest(res, head, source, target.reference, controller.signal)
      } else {
        await serveBlob(req, res, head, source, target.digest, controller.signal, options.spoolDir)
      }
    } catch (cause) {
      const error = asRegistryError(cause)
      options.onError?.(error, { method, path })
      if (res.headersSent) {
        // Mid-blob: cut the connection so the client sees fewer bytes than Content-Length.
        res.destroy()
        return
      }
      const body = method === 'HEAD' ? '' : errorBody(error)
      res.writeHead(Number(error.details.status ?? 500), {
        ...API_VERSION_HEADER,
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
      })
      res.end(body)
    }
  }
}

/**
 * Starts the endpoint.
 * @example
 * ```ts
 * const registry = await startRegistry({
 *   repositories: new Map([['capsules/demo', layoutBlobSource(await openLayout('sealed'))]]),
 * })
 * // skopeo copy --src-tls-verify=false docker://127.0.0.1:PORT/capsules/demo:v1 oci:out:v1
 * await registry.close()
 * ```
 */
export async function startRegistry(options: RegistryServerOptions): Promise<RegistryServer> {
  const handler = registryHandler(options)
  const server = createServer((req, res) => void handler(req, res))
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
