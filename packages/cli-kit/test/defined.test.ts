import { describe, expect, it } from 'vitest'
import { definedFields } from '../src/index.ts'

describe('definedFields', () => {
  it('drops undefined entries only: null, 0, false, empty strings and arrays are values', () => {
    const fields = definedFields({
      a: undefined,
      b: 0,
      c: false,
      d: '',
      e: null,
      f: [] as string[],
      g: 'x' as string | undefined,
    })
    expect(fields).toEqual({ b: 0, c: false, d: '', e: null, f: [], g: 'x' })
    expect(Object.keys(fields)).not.toContain('a')
    // A callee's default applies to a key left out, not to one set to undefined.
    const withDefault = ({ n = 7 }: { n?: number }) => n
    expect(withDefault({ ...definedFields({ n: undefined as number | undefined }) })).toBe(7)
    expect(withDefault({ ...definedFields({ n: 3 as number | undefined }) })).toBe(3)
  })
})
