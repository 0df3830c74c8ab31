/** The status page's HTML, server-rendered from a snapshot; every value is escaped. */
import { html, type Raw } from './escape.ts'
import type { StatusSnapshot } from './snapshot.ts'

const STYLE = `body{font:14px system-ui,sans-serif;margin:1.5rem;color:#222;max-width:70rem}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
code{font-size:12px;word-break:break-all}.ok{color:#17692b}.bad{color:#b00020;font-weight:600}
.muted{color:#777}#live{float:right;font-size:12px}`

const short = (hex: string | undefined) =>
  hex && hex.length > 20 ? `${hex.slice(0, 10)}…${hex.slice(-6)}` : (hex ?? '')

/** The `<main>` part: what live updates replace. */
export function renderMain(s: StatusSnapshot): Raw {
  const health = s.health.map(
    (h) =>
      html`<tr data-health="${h.name}"><th>${h.name}</th><td class="${h.ok ? 'ok' : 'bad'}">${h.ok ? 'ok' : 'FAIL'}</td><td>${h.text}</td></tr>`,
  )
  const capsules = s.capsules.map(
    (c) =>
      html`<tr data-cid="${c.cid}"><td><code>${c.cid}</code></td><td>${c.name ?? ''}</td><td><code title="${c.capsuleId}">${short(c.capsuleId)}</code></td><td><code>${c.policy}</code></td><td class="runs">${c.runsUsed}</td></tr>`,
  )
  const history = s.history.map(
    (h) =>
      html`<tr data-outcome="${h.outcome}"><td>${h.time}</td><td class="${h.outcome === 'served' ? 'ok' : h.outcome === 'accepted' ? '' : 'bad'}">${h.outcome}</td><td>${h.path}</td><td><code title="${h.grantId ?? ''}">${short(h.grantId)}</code></td><td><code title="${h.capsuleId ?? ''}">${short(h.capsuleId)}</code></td><td class="reason">${h.reason ?? ''}</td></tr>`,
  )
  const pending = s.pending.map(
    (p) =>
      html`<tr><td><code>${p.grantId}</code></td><td><code>${short(p.capsuleId)}</code></td><td>${p.since}</td></tr>`,
  )
  const empty = (cols: number, text: string) =>
    html`<tr><td colspan="${cols}" class="muted">${text}</td></tr>`
  return html`<main id="main" data-generated="${s.generatedAt}">
<h2>Keyguard health</h2>
<table id="health">${health}</table>
<h2>Capsules guarded (${s.capsules.length})</h2>
<table id="capsules"><tr><th>CID</th><th>name</th><th>capsule id</th><th>policy</th><th>runs used</th></tr>${capsules.length ? capsules : empty(5, 'none yet')}</table>
<h2>Pending releases (${s.pending.length})</h2>
<table id="pending"><tr><th>grant</th><th>capsule</th><th>since</th></tr>${pending.length ? pending : empty(3, 'none')}</table>
<h2>Grants and releases</h2>
<table id="history"><tr><th>time</th><th>outcome</th><th>path</th><th>grant</th><th>capsule</th><th>reason</th></tr>${history.length ? history : empty(6, 'nothing since the daemon started')}</table>
<p class="muted">as of ${s.generatedAt}</p>
</main>`
}

/** The whole page. The script (live updates) is a separate file, so the CSP allows no inline script. */
export function renderPage(s: StatusSnapshot): string {
  return `<!doctype html>${html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${s.title}</title><style>${STYLE}</style></head>
<body><span id="live" class="muted">live updates: connecting</span><h1>${s.title}</h1>
${renderMain(s)}
<script src="/status/app.js"></script></body></html>`}`
}

/** Live updates: each server event re-fetches the rendered `<main>` (no client-side templating). */
export const CLIENT_SCRIPT = `'use strict'
const live = document.getElementById('live')
const source = new EventSource('/status/events')
let seq = 0
async function refresh() {
  const mine = ++seq
  const res = await fetch('/status/fragment', { cache: 'no-store' })
  if (!res.ok || mine !== seq) return
  const main = document.getElementById('main')
  const next = document.createElement('template')
  next.innerHTML = await res.text()
  main.replaceWith(next.content.firstElementChild)
}
source.addEventListener('open', () => { live.textContent = 'live updates: on' })
source.addEventListener('error', () => { live.textContent = 'live updates: reconnecting' })
source.addEventListener('changed', () => { refresh().catch(() => {}) })
`
