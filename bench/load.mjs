// The load generator, forked by run.mjs so that it never shares a process
// (or an event loop) with a server. It receives one message: a list of
// autocannon runs to drive at the same time; it answers with their results.
import autocannon from 'autocannon'
import { dpopSigner } from './lib/dpop.mjs'

/** The request each kind of load sends; pools arrive from the parent. */
function requestsFor (run) {
  const pool = run.pool ?? []
  let next = 0
  switch (run.kind) {
    case 'me':
      return [{ method: 'GET', path: run.path ?? '/me', setupRequest: (request) => ({ ...request, headers: { authorization: `Bearer ${pool[next++ % pool.length]}` } }) }]
    case 'dpop-me': {
      // A DPoP-bound access token, each request with a fresh proof of its key (and the token's hash, ath).
      const sign = dpopSigner(run.privateJwk)
      const path = run.path ?? '/me'
      const htu = `${run.url}${path}`
      return [{
        method: 'GET',
        path,
        setupRequest: (request) => {
          const token = pool[next++ % pool.length]
          return { ...request, headers: { authorization: `DPoP ${token}`, dpop: sign('GET', htu, token) } }
        }
      }]
    }
    case 'refresh':
      // Each token once: autocannon's `amount` equals the pool, so no token is sent twice.
      // A peer that takes only form bodies (oidc-provider's token endpoint) gets `form`, and its client_id in `params`.
      return [{
        method: 'POST',
        path: run.path ?? '/oauth/token',
        headers: { 'content-type': run.form === true ? 'application/x-www-form-urlencoded' : 'application/json' },
        setupRequest: (request) => {
          const fields = { grant_type: 'refresh_token', refresh_token: pool[next++ % pool.length], ...run.params }
          return { ...request, body: run.form === true ? new URLSearchParams(fields).toString() : JSON.stringify(fields) }
        }
      }]
    case 'dpop-refresh': {
      // The refresh grant of a DPoP-bound session: each token once, each with a proof of the key it is bound to.
      const sign = dpopSigner(run.privateJwk)
      const htu = `${run.url}/oauth/token`
      return [{
        method: 'POST',
        path: '/oauth/token',
        setupRequest: (request) => ({
          ...request,
          headers: { 'content-type': 'application/json', dpop: sign('POST', htu) },
          body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: pool[next++ % pool.length] })
        })
      }]
    }
    case 'login':
      return [{
        method: 'POST',
        path: '/oauth/token',
        headers: { 'content-type': 'application/json' },
        setupRequest: (request) => ({ ...request, body: JSON.stringify({ grant_type: 'password', username: pool[next++ % pool.length], password: run.password }) })
      }]
    case 'get':
      return [{ method: 'GET', path: run.path }]
    default:
      throw new Error(`unknown load kind ${run.kind}`)
  }
}

function drive (run) {
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      url: run.url,
      connections: run.connections,
      pipelining: 1,
      duration: run.durationSeconds,
      ...(run.amount === undefined ? {} : { amount: run.amount }),
      ...(run.overallRate === undefined ? {} : { overallRate: run.overallRate }),
      timeout: 10,
      requests: requestsFor(run)
    }, (error, result) => {
      clearTimeout(cap)
      if (error) reject(error)
      else resolve(summarize(run, result))
    })
    // `amount` overrides `duration` in autocannon: every run is also bounded in time.
    const cap = setTimeout(() => instance.stop(), run.durationSeconds * 1000 + 2000)
  })
}

function summarize (run, result) {
  const seconds = (new Date(result.finish) - new Date(result.start)) / 1000
  const answered = result['1xx'] + result['2xx'] + result['3xx'] + result['4xx'] + result['5xx']
  return {
    label: run.label,
    kind: run.kind,
    connections: run.connections,
    seconds,
    requests: answered,
    ok: result['2xx'],
    rps: result['2xx'] / seconds,
    latency: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, p99_9: result.latency.p99_9, max: result.latency.max },
    overallRate: run.overallRate,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes: result.statusCodeStats
  }
}

process.once('message', async (runs) => {
  try {
    const results = await Promise.all(runs.map(drive))
    process.send({ results })
  } catch (error) {
    process.send({ error: String(error?.stack ?? error) })
  }
  process.disconnect()
})
