/**
 * Deterministic synthetic sensor dataset for the aggregate example and the benchmark:
 * `station,hour,temperature_c,humidity_pct,pm25` rows from a seeded linear congruential
 * generator, so the same row count always gives the same bytes.
 *
 * `node examples/aggregate/make-data.ts 60 > examples/aggregate/data.csv` wrote data.csv.
 */
export function syntheticCsv(rows: number, seed = 42): string {
  let s = seed >>> 0
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
  const stations = ['north', 'south', 'harbour', 'airport', 'campus']
  const out = ['station,hour,temperature_c,humidity_pct,pm25']
  for (let i = 0; i < rows; i++) {
    const station = stations[i % stations.length]
    const hour = i % 24
    const temp = (8 + 10 * Math.sin((hour / 24) * Math.PI) + rand() * 4).toFixed(1)
    const hum = Math.round(55 + rand() * 40)
    const pm = (5 + rand() * 30).toFixed(1)
    out.push(`${station},${hour},${temp},${hum},${pm}`)
  }
  return `${out.join('\n')}\n`
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(syntheticCsv(Number(process.argv[2] ?? 60)))
}
