/** The OCI image-spec shapes this package reads and writes (fields it does not use are kept). */
import type { Sha256Digest } from '../encoding.ts'

export interface Descriptor {
  mediaType: string
  digest: Sha256Digest
  size: number
  annotations?: Record<string, string>
  [field: string]: unknown
}

export interface ImageManifest {
  schemaVersion: 2
  mediaType?: string
  config: Descriptor
  layers: Descriptor[]
  annotations?: Record<string, string>
  [field: string]: unknown
}

export interface ImageIndex {
  schemaVersion: 2
  mediaType?: string
  manifests: Descriptor[]
  annotations?: Record<string, string>
  [field: string]: unknown
}
