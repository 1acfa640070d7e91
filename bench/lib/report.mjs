// The table printed at the end of a run and the SVG chart docs/performance.md shows.

const MB = 1024 * 1024
const fixed = (value, digits = 0) => value === undefined || value === null || Number.isNaN(value) ? '–' : value.toFixed(digits)

const blank = { rps: '', p50: '', p99: '', p999: '', errors: '', non2xx: '', rss: '' }

/**
 * Rows of the summary table, one per scenario, then one per peer (Baton's
 * ratio to it), the /healthz probe of the login scenario, and the latency at
 * fixed rates below the maximum.
 */
export function tableRows (scenarios) {
  const rows = []
  for (const s of scenarios) {
    rows.push({
      scenario: s.name,
      rps: fixed(s.service.rps),
      p50: fixed(s.service.latency.p50, 1),
      p99: fixed(s.service.latency.p99, 1),
      p999: fixed(s.service.latency.p99_9, 1),
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
        p999: fixed(s.probe.latency.p99_9, 1),
        errors: String(s.probe.errors + s.probe.timeouts),
        non2xx: String(s.probe.non2xx),
        rss: '',
        reference: '',
        ratio: '',
        target: 'p99 < 20 ms'
      })
    }
    for (const peer of s.peers ?? []) {
      rows.push({ ...blank, scenario: `${s.name}: vs ${peer.name}`, reference: `${fixed(peer.rps)} (${peer.name}, p99 ${fixed(peer.latency.p99, 1)} ms)`, ratio: fixed(peer.ratio, 2), target: '' })
    }
    for (const point of s.service.underLoad ?? []) {
      rows.push({
        scenario: `${s.name} at ${point.share * 100} % (${point.offered}/s)`,
        rps: fixed(point.achieved),
        p50: fixed(point.latency.p50, 1),
        p99: fixed(point.latency.p99, 1),
        p999: fixed(point.latency.p99_9, 1),
        errors: String(point.errors),
        non2xx: String(point.non2xx),
        rss: '',
        reference: '',
        ratio: '',
        target: ''
      })
    }
  }
  return rows
}

const COLUMNS = [
  ['scenario', 'scenario'], ['rps', 'req/s'], ['p50', 'p50 ms'], ['p99', 'p99 ms'], ['p999', 'p99.9 ms'], ['errors', 'errors'],
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
 * and both rates written beside it; under it a thinner bar per peer. Below,
 * where the run measured it, latency against offered load.
 */
export function chartSvg (scenarios, caption) {
  const width = 900
  const left = 230
  const plot = 300
  const barHeight = 22
  const peerHeight = 12
  const gap = 14
  const top = 48
  const maxRatio = 1.2
  const rowsHeight = scenarios.reduce((sum, s) => sum + barHeight + gap + (s.peers ?? []).length * (peerHeight + 6), 0)
  const withLoad = scenarios.filter((s) => (s.service.underLoad ?? []).length > 0)
  const loadTop = top + rowsHeight + 40
  const loadHeight = withLoad.length === 0 ? 0 : 230
  const height = top + rowsHeight + 30 + loadHeight
  const x = (ratio) => left + plot * Math.min(ratio, maxRatio) / maxRatio
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${left}" y="18" font-size="14" font-weight="600">Baton's throughput as a share of its reference's and its peers' (same run)</text>`,
    `<text x="${left}" y="34" fill="#555">${escape(caption)}</text>`
  ]
  for (let tick = 0; tick <= maxRatio + 1e-9; tick += 0.2) {
    parts.push(`<line x1="${x(tick)}" y1="${top - 4}" x2="${x(tick)}" y2="${top + rowsHeight}" stroke="${Math.abs(tick - 1) < 1e-9 ? '#888' : '#e2e2e2'}"/>`)
    parts.push(`<text x="${x(tick)}" y="${top + rowsHeight + 14}" text-anchor="middle" fill="#555">${tick.toFixed(1)}</text>`)
  }
  let y = top
  for (const s of scenarios) {
    const target = targetRatio(s.target)
    const met = target === undefined ? undefined : s.ratio >= target
    parts.push(`<text x="${left - 8}" y="${y + 15}" text-anchor="end" font-weight="600">${escape(s.name)}</text>`)
    parts.push(`<rect x="${left}" y="${y}" width="${x(s.ratio) - left}" height="${barHeight}" fill="${met === false ? '#c0703a' : '#2f6fb0'}"/>`)
    parts.push(`<text x="${x(s.ratio) + 4}" y="${y + 15}">${s.ratio.toFixed(2)}</text>`)
    if (target !== undefined) parts.push(`<line x1="${x(target)}" y1="${y - 3}" x2="${x(target)}" y2="${y + barHeight + 3}" stroke="#222" stroke-width="2" stroke-dasharray="3 2"/>`)
    parts.push(`<text x="${left + plot + 40}" y="${y + 15}" fill="#333">${Math.round(s.service.rps)} vs ${Math.round(s.reference.rps)} req/s (${escape(s.reference.name)})</text>`)
    y += barHeight + 6
    for (const peer of s.peers ?? []) {
      parts.push(`<text x="${left - 8}" y="${y + 10}" text-anchor="end" fill="#333">vs ${escape(peer.name)}</text>`)
      parts.push(`<rect x="${left}" y="${y}" width="${x(peer.ratio) - left}" height="${peerHeight}" fill="#7fa7d0"/>`)
      // Off the scale, the figure goes inside the bar's end.
      parts.push(peer.ratio > maxRatio
        ? `<text x="${x(maxRatio) - 4}" y="${y + 10}" text-anchor="end" fill="#fff">${peer.ratio.toFixed(2)} →</text>`
        : `<text x="${x(peer.ratio) + 4}" y="${y + 10}">${peer.ratio.toFixed(2)}</text>`)
      parts.push(`<text x="${left + plot + 40}" y="${y + 10}" fill="#333">${Math.round(s.service.rps)} vs ${Math.round(peer.rps)} req/s</text>`)
      y += peerHeight + 6
    }
    y += gap - 6
  }
  withLoad.forEach((s, i) => parts.push(...latencyPanel(s, 70 + i * 430, loadTop, 360, loadHeight - 70)))
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

const PERCENTILES = [['p50', '#2f6fb0'], ['p99', '#c0703a'], ['p99_9', '#7a3ab0']]

/** Latency (ms) against offered load (share of the maximum), the maximum's own latency at 100 %. */
function latencyPanel (s, left, top, plotWidth, plotHeight) {
  const points = [...s.service.underLoad.map((point) => ({ share: point.share, latency: point.latency })), { share: 1, latency: s.service.latency }]
  const maxMs = Math.max(1, ...points.flatMap((point) => PERCENTILES.map(([key]) => point.latency[key] ?? 0)))
  const px = (share) => left + plotWidth * share
  const py = (ms) => top + plotHeight - plotHeight * ms / maxMs
  const parts = [
    `<text x="${left}" y="${top - 14}" font-weight="600">${escape(s.name)}: latency against load (share of ${Math.round(s.service.rps)}/s)</text>`,
    `<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" y2="${top + plotHeight}" stroke="#888"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="#888"/>`,
    `<text x="${left - 4}" y="${top + 4}" text-anchor="end" fill="#555">${maxMs}</text>`,
    `<text x="${left - 4}" y="${top + plotHeight}" text-anchor="end" fill="#555">0</text>`,
    `<text x="${left - 4}" y="${top + plotHeight / 2}" text-anchor="end" fill="#555">ms</text>`
  ]
  for (const point of points) parts.push(`<text x="${px(point.share)}" y="${top + plotHeight + 14}" text-anchor="middle" fill="#555">${point.share * 100} %</text>`)
  PERCENTILES.forEach(([key, colour], i) => {
    const line = points.filter((point) => typeof point.latency[key] === 'number').map((point) => `${px(point.share).toFixed(1)},${py(point.latency[key]).toFixed(1)}`)
    parts.push(`<polyline points="${line.join(' ')}" fill="none" stroke="${colour}" stroke-width="2"/>`)
    parts.push(`<text x="${left + 10 + i * 70}" y="${top + plotHeight + 34}" fill="${colour}">${key.replace('_', '.')}</text>`)
  })
  return parts
}
