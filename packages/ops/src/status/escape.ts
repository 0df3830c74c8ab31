/** HTML escaping: every text the status page shows passes here (names, reasons, CIDs). */
const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
}

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"'`]/g, (c) => ENTITIES[c] ?? c)
}

/** A tagged template whose `${values}` are escaped; nest its results with {@link raw}. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Raw {
  let out = strings[0] ?? ''
  values.forEach((v, i) => {
    out += toHtml(v) + (strings[i + 1] ?? '')
  })
  return new Raw(out)
}

/** HTML already escaped (the output of {@link html}). */
export class Raw {
  readonly value: string
  constructor(value: string) {
    this.value = value
  }
  toString(): string {
    return this.value
  }
}

function toHtml(v: unknown): string {
  if (v instanceof Raw) return v.value
  if (Array.isArray(v)) return v.map(toHtml).join('')
  return escapeHtml(v)
}
