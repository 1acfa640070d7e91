// The table printed at the end of a run and the SVG chart the README shows.

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

/** The rows as a Markdown table (what the README shows). */
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

/**
 * Horizontal bars, one pair per scenario: the service's req/s against its
 * reference's, on a log scale (logins are a hundred times slower than API
 * calls), labelled with the ratio.
 */
export function chartSvg (scenarios, caption) {
  const width = 760
  const left = 150
  const right = 240
  const barHeight = 16
  const groupHeight = 2 * barHeight + 22
  const top = 44
  const height = top + scenarios.length * groupHeight + 34
  const values = scenarios.flatMap((s) => [s.service.rps, s.reference.rps]).filter((v) => v > 0)
  const low = 10 ** Math.floor(Math.log10(Math.min(...values)))
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values)))
  const x = (value) => left + (width - left - right) * (Math.log10(Math.max(value, low)) - Math.log10(low)) / (Math.log10(high) - Math.log10(low))
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${left}" y="18" font-size="14" font-weight="600">Baton vs. reference, requests per second (log scale)</text>`,
    `<text x="${left}" y="34" fill="#555">${escape(caption)}</text>`
  ]
  for (let tick = low; tick <= high; tick *= 10) {
    parts.push(`<line x1="${x(tick)}" y1="${top - 4}" x2="${x(tick)}" y2="${height - 28}" stroke="#ddd"/>`)
    parts.push(`<text x="${x(tick)}" y="${height - 14}" text-anchor="middle" fill="#555">${tick >= 1000 ? `${tick / 1000}k` : tick}</text>`)
  }
  scenarios.forEach((s, i) => {
    const y = top + i * groupHeight
    parts.push(`<text x="${left - 8}" y="${y + barHeight + 4}" text-anchor="end" font-weight="600">${escape(s.name)}</text>`)
    parts.push(`<rect x="${left}" y="${y}" width="${x(s.service.rps) - left}" height="${barHeight}" fill="#2f6fb0"/>`)
    parts.push(`<text x="${x(s.service.rps) + 4}" y="${y + 12}">${Math.round(s.service.rps)} Baton</text>`)
    parts.push(`<rect x="${left}" y="${y + barHeight + 2}" width="${x(s.reference.rps) - left}" height="${barHeight}" fill="#b0b7bf"/>`)
    parts.push(`<text x="${x(s.reference.rps) + 4}" y="${y + barHeight + 14}" fill="#333">${Math.round(s.reference.rps)} ${escape(s.reference.name)} · ratio ${s.ratio.toFixed(2)}</text>`)
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
