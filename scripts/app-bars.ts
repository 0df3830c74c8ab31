/**
 * The thin-apps bars of issue 14, re-runnable: the lines of `apps/pi-node/src` and
 * `apps/executor-node/src` together (bar: under 1,500), and the longest function in an app
 * (bar: 120 lines at most; every function, method and arrow counted whole, nested ones too).
 *
 *   node scripts/app-bars.ts [--json]      exit 0 when both bars hold, 1 when one does not
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const APPS = ['apps/pi-node/src', 'apps/executor-node/src']
const MAX_TOTAL_LINES = 1500
const MAX_FUNCTION_LINES = 120

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .sort()
}

interface FunctionLength {
  file: string
  name: string
  line: number
  lines: number
}

/** Every function-like node of a file, with its length in lines. */
function functionsOf(file: string, text: string): FunctionLength[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const out: FunctionLength[] = []
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line
      const named = (node as { name?: ts.Node }).name
      const owner = ts.isPropertyAssignment(node.parent) || ts.isVariableDeclaration(node.parent)
      const name = named
        ? named.getText(sf)
        : owner
          ? (node.parent as ts.PropertyAssignment).name.getText(sf)
          : '(anonymous)'
      out.push({ file, name, line: start + 1, lines: end - start + 1 })
    }
    ts.forEachChild(node, visit)
  }
  visit(sf)
  return out
}

const perApp = APPS.map((dir) => {
  const files = sources(dir).map((file) => {
    const text = readFileSync(join(ROOT, file), 'utf8')
    return { file, lines: text.split('\n').length - (text.endsWith('\n') ? 1 : 0), text }
  })
  return { dir, lines: files.reduce((n, f) => n + f.lines, 0), files }
})
const total = perApp.reduce((n, a) => n + a.lines, 0)
const functions = perApp
  .flatMap((a) => a.files.flatMap((f) => functionsOf(f.file, f.text)))
  .sort((a, b) => b.lines - a.lines)
const tooLong = functions.filter((f) => f.lines > MAX_FUNCTION_LINES)
const ok = total < MAX_TOTAL_LINES && tooLong.length === 0

if (process.argv.includes('--json')) {
  console.log(
    JSON.stringify({
      ok,
      lines: Object.fromEntries(perApp.map((a) => [a.dir, a.lines])),
      total,
      maxTotal: MAX_TOTAL_LINES,
      longest: functions.slice(0, 5),
      tooLong,
    }),
  )
} else {
  for (const a of perApp) {
    console.log(`${a.dir.padEnd(24)} ${String(a.lines).padStart(5)} lines`)
    for (const f of [...a.files].sort((x, y) => y.lines - x.lines).slice(0, 5)) {
      console.log(`  ${f.file.slice(a.dir.length + 1).padEnd(28)} ${String(f.lines).padStart(5)}`)
    }
  }
  console.log(
    `${'together'.padEnd(24)} ${String(total).padStart(5)} lines (bar: under ${MAX_TOTAL_LINES})`,
  )
  console.log(`longest functions (bar: ${MAX_FUNCTION_LINES} lines at most):`)
  for (const f of functions.slice(0, 5)) {
    console.log(`  ${String(f.lines).padStart(4)}  ${f.name}  ${f.file}:${f.line}`)
  }
  console.log(ok ? 'both bars hold' : 'a bar does not hold')
}
process.exitCode = ok ? 0 : 1
