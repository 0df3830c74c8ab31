// Aggregate a CSV dataset inside the QuickJS sandbox: for every numeric column, count,
// mean, median, min and max. Reads the payload with digicap.inputText() and writes one
// JSON document with digicap.output(). Runs unchanged under plain Node if `digicap` is
// provided (the benchmark does that for its baseline). The sandbox runs it in strict mode.

const text = digicap.inputText()
const lines = text.split(/\r?\n/).filter((l) => l.length > 0)
if (lines.length < 2) throw new Error('expected a header line and at least one row')
const header = lines[0].split(',')
const columns = header.map(() => [])
for (let i = 1; i < lines.length; i++) {
  const cells = lines[i].split(',')
  if (cells.length !== header.length)
    throw new Error(`row ${i + 1}: expected ${header.length} cells`)
  for (let c = 0; c < cells.length; c++) {
    const v = Number(cells[c])
    if (cells[c] !== '' && Number.isFinite(v)) columns[c].push(v)
  }
}
const stats = {}
header.forEach((name, c) => {
  const xs = columns[c]
  if (xs.length === 0) return
  xs.sort((a, b) => a - b)
  let sum = 0
  for (const x of xs) sum += x
  const mid = xs.length >> 1
  const median = xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2
  stats[name] = {
    count: xs.length,
    mean: Math.round((sum / xs.length) * 1000) / 1000,
    median,
    min: xs[0],
    max: xs[xs.length - 1],
  }
})
digicap.log(`rows: ${lines.length - 1}, numeric columns: ${Object.keys(stats).length}`)
digicap.output(JSON.stringify({ rows: lines.length - 1, stats }))
