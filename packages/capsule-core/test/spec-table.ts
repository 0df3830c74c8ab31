/**
 * A SPEC.md section's rule table against a vector folder: every name (or `prefix-*`) in the
 * table's second column must match a file, and every file must be listed under some rule. The
 * vectors of both format versions are held to their tables this way (§8, §11.5).
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

export function describeSpecTable(options: {
  /** The heading that starts the section, e.g. `## 8. Test vectors`. */
  heading: string
  /** The vector files' names. */
  files: readonly string[]
  minRows: number
  minNames: number
}): void {
  const { heading, files } = options
  describe(`SPEC ${heading.replace(/^#+ /, '')}: rule table`, () => {
    const spec = readFileSync(new URL('../SPEC.md', import.meta.url), 'utf8')
    const start = spec.indexOf(heading)
    const rest = spec.slice(start + heading.length)
    const next = rest.search(/\n##+ /)
    const section = start < 0 ? '' : next < 0 ? rest : rest.slice(0, next)
    const rows = section
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| rule') && !l.startsWith('| ---'))
    const names = rows.flatMap((row) =>
      [...(row.split('|')[2] ?? '').matchAll(/`([a-z0-9*-]+)`/g)].map((m) => m[1] as string),
    )
    const matches = (name: string, file: string) =>
      name.endsWith('*') ? file.startsWith(name.slice(0, -1)) : file === name

    it('lists rules, each with vectors', () => {
      expect(start).toBeGreaterThanOrEqual(0)
      expect(rows.length).toBeGreaterThanOrEqual(options.minRows)
      expect(names.length).toBeGreaterThanOrEqual(options.minNames)
    })

    it('names only vectors that exist', () => {
      for (const name of names)
        expect(
          files.some((f) => matches(name, f)),
          name,
        ).toBe(true)
    })

    it('leaves no vector out', () => {
      for (const file of files)
        expect(
          names.some((n) => matches(n, file)),
          file,
        ).toBe(true)
    })
  })
}
