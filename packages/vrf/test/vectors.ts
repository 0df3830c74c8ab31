import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export const VECTOR_DIR = join(import.meta.dirname, 'vectors')

/** One vector file: `key: value` lines (CCTV style); hex values stay strings. */
export interface VectorFile {
  readonly file: string
  readonly fields: Readonly<Record<string, string>>
}

export function readVectors(): VectorFile[] {
  return readdirSync(VECTOR_DIR)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((file) => {
      const fields: Record<string, string> = {}
      for (const line of readFileSync(join(VECTOR_DIR, file), 'utf8').split('\n')) {
        const at = line.indexOf(': ')
        if (at > 0) fields[line.slice(0, at)] = line.slice(at + 2)
      }
      return { file, fields }
    })
}

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
export const toHexString = (b: Uint8Array): string => Buffer.from(b).toString('hex')
