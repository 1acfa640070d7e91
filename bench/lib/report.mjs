// The table printed at the end of a run and the SVG chart docs/performance.md shows.

const MB = 1024 * 1024
const fixed = (value, digits = 0) => value === undefined || value === null || Number.isNaN(value) ? '–' : value.toFixed(digits)

/** Rows of the summary table, one per scenario (plus the /healthz probe of the login scenario). */
export function tableRows (scenarios) {
  const rows = []
  for (const s of scenarios) {
    rows.push({
      scenario: s.name,
      rps: fixed(s.service.rps),
      p50: fixed(s.service.latency.p50, 1),
      p99: fixed(s.service.latency.p99, 1),
      errors: String(s.service.errors + s.service.timeouts),
      non2xx: String(s.service.non2xx),
      rss: s.rss === undefined ? '–' : Object.entries(s.rss).map(([name, bytes]) => `${name.replace('-service', '')} ${fixed(bytes / MB)}`).join(', '),
      reference: `${fixed(s.reference.rps)} (${s.reference.name})`,
      ratio: fixed(s.ratio, 2),
      target: s.target ?? ''
    })
    if (s.probe !== undefined) {
      rows.push({
        scenario: `${s.name}: /healthz alongside`,
        rps: fixed(s.probe.rps),
        p50: fixed(s.probe.latency.p50, 1),
        p99: fixed(s.probe.latency.p99, 1),
        errors: String(s.probe.errors + s.probe.timeouts),
        non2xx: String(s.probe.non2xx),
        rss: '',
        reference: '',
        ratio: '',
        target: 'p99 < 20 ms'
      })
    }
  }
  return rows
}

const COLUMNS = [
  ['scenario', 'scenario'], ['rps', 'req/s'], ['p50', 'p50 ms'], ['p99', 'p99 ms'], ['errors', 'errors'],
  ['non2xx', 'non-2xx'], ['rss', 'RSS MB (end)'], ['reference', 'reference req/s'], ['ratio', 'ratio'], ['target', 'target']
]

/** The rows as a Markdown table (what docs/performance.md shows). */
export function markdownTable (rows) {
  const header = `| ${COLUMNS.map(([, title]) => title).join(' | ')} |`
  const rule = `|${COLUMNS.map(([key]) => key === 'scenario' || key === 'rss' || key === 'reference' || key === 'target' ? '---' : '---:').join('|')}|`
  return [header, rule, ...rows.map((row) => `| ${COLUMNS.map(([key]) => row[key]).join(' | ')} |`)].join('\n')
}

/** The rows aligned for a terminal. */
export function textTable (rows) {
  const widths = COLUMNS.map(([key, title]) => Math.max(title.length, ...rows.map((row) => row[key].length)))
  const line = (cells) => cells.map((cell, i) => cell.padEnd(widths[i])).join('  ')
  return [line(COLUMNS.map(([, title]) => title)), line(widths.map((w) => '-'.repeat(w))), ...rows.map((row) => line(COLUMNS.map(([key]) => row[key])))].join('\n')
}

const escape = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** The ratio a scenario aims at, when its target is one (`≥ 0.85`). */
function targetRatio (target) {
  const match = /^≥ (0\.\d+)$/.exec(target ?? '')
  return match === null ? undefined : Number(match[1])
}

/**
 * One bar per scenario: Baton's rate as a share of its reference's, measured
 * in the same run (1.0 = as fast as the reference), with the target marked
 * and both rates written beside it.
 */
export function chartSvg (scenarios, caption) {
  const width = 820
  const left = 90
  const plot = 380
  const barHeight = 22
  const gap = 14
  const top = 48
  const maxRatio = 1.2
  const height = top + scenarios.length * (barHeight + gap) + 30
  const x = (ratio) => left + plot * Math.min(ratio, maxRatio) / maxRatio
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${left}" y="18" font-size="14" font-weight="600">Baton's throughput as a share of its reference's (same run)</text>`,
    `<text x="${left}" y="34" fill="#555">${escape(caption)}</text>`
  ]
  for (let tick = 0; tick <= maxRatio + 1e-9; tick += 0.2) {
    parts.push(`<line x1="${x(tick)}" y1="${top - 4}" x2="${x(tick)}" y2="${height - 26}" stroke="${Math.abs(tick - 1) < 1e-9 ? '#888' : '#e2e2e2'}"/>`)
    parts.push(`<text x="${x(tick)}" y="${height - 12}" text-anchor="middle" fill="#555">${tick.toFixed(1)}</text>`)
  }
  scenarios.forEach((s, i) => {
    const y = top + i * (barHeight + gap)
    const target = targetRatio(s.target)
    const met = target === undefined ? undefined : s.ratio >= target
    parts.push(`<text x="${left - 8}" y="${y + 15}" text-anchor="end" font-weight="600">${escape(s.name)}</text>`)
    parts.push(`<rect x="${left}" y="${y}" width="${x(s.ratio) - left}" height="${barHeight}" fill="${met === false ? '#c0703a' : '#2f6fb0'}"/>`)
    parts.push(`<text x="${x(s.ratio) + 4}" y="${y + 15}">${s.ratio.toFixed(2)}</text>`)
    if (target !== undefined) parts.push(`<line x1="${x(target)}" y1="${y - 3}" x2="${x(target)}" y2="${y + barHeight + 3}" stroke="#222" stroke-width="2" stroke-dasharray="3 2"/>`)
    parts.push(`<text x="${left + plot + 40}" y="${y + 15}" fill="#333">${Math.round(s.service.rps)} vs ${Math.round(s.reference.rps)} req/s (${escape(s.reference.name)})</text>`)
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
