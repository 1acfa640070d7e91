// The demo page: one @baton/client for this tab (and its sibling tabs), a
// second one playing a phone app in token mode, and a thief who replays a
// stolen refresh token from another computer (the demo server). With DPoP
// (the default) both clients bind their tokens to a key of their own, and
// the thief, who has only the tokens, gets nowhere. Everything
// shown comes from the client's events and the services' answers; nothing
// is written to storage.
import { BatonClientError, createClient, MemoryKeyStore, MemoryTokenStore } from '/client/index.js'

const config = await (await fetch('/config.json')).json()

/** Refresh this long before the access token expires: 5 s of a 20 s token, so the countdown shows it. */
const SKEW_MS = 5000
const PHONE_CLIENT_ID = 'baton'
const RING = 2 * Math.PI * 52

const $ = (id) => document.getElementById(id)

/** A short name for this tab, so the log can tell tabs apart. */
const tabName = `Tab ${Array.from(crypto.getRandomValues(new Uint8Array(2)), (byte) => 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'[byte % 32]).join('')}`

function el (tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'class') node.className = value
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value)
    else node.setAttribute(name, value)
  }
  node.append(...children.filter((child) => child !== undefined && child !== null && child !== false))
  return node
}

const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
const preview = (token) => token.length <= 24 ? token : `${token.slice(0, 14)}…${token.slice(-8)}`

function decodeClaims (token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (char) => char.charCodeAt(0))))
  } catch {
    return {}
  }
}

function errorText (error) {
  if (!(error instanceof BatonClientError)) return String(error?.message ?? error)
  if (error.code === 'invalid_grant' && /password|credentials/i.test(error.message)) return 'Wrong username or password.'
  if (error.code === 'slow_down') return `Too many attempts. Try again in ${error.retryAfter ?? 'a few'} s.`
  if (error.code === 'network_error') return 'The auth-service cannot be reached. Is `pnpm demo` still running?'
  return `${error.code}: ${error.message}`
}

async function busy (button, task) {
  button.disabled = true
  button.classList.add('is-busy')
  try {
    return await task()
  } finally {
    button.disabled = false
    button.classList.remove('is-busy')
  }
}

// --- activity log ------------------------------------------------------------

/** Adds an entry at the top of the activity log; kinds: ok, refresh, handoff, warn, danger, info. Returns it, to be amended. */
function log (kind, title, detail, who = tabName) {
  $('activity-empty')?.remove()
  const titleNode = el('div', { class: 'title' }, title)
  const entry = el('li', { class: `kind-${kind}` },
    el('span', { class: 'mark' }),
    el('div', {}, titleNode, detail === undefined ? undefined : el('div', { class: 'detail' }, detail), el('div', { class: 'meta' }, `${time(Date.now())} · ${who}`)))
  $('activity').prepend(entry)
  return { entry, setTitle: (text) => { titleNode.textContent = text } }
}

function clearLog () {
  $('activity').replaceChildren(el('li', { id: 'activity-empty', class: 'activity-empty' }, 'What the client and the services do shows up here.'))
}

// --- this tab's client ---------------------------------------------------------

const stats = { requests: 0, rotations: 0, handed: 0 }

/** Counts the refresh requests this tab sends: with two tabs open, one of them sends none. */
async function countingFetch (input, init) {
  if (typeof init?.body === 'string' && init.body.includes('grant_type=refresh_token')) {
    stats.requests++
    renderStats()
  }
  return await fetch(input, init)
}

const tabStore = config.delivery === 'body' ? new MemoryTokenStore() : undefined
const baton = createClient({
  issuer: config.issuer,
  clientId: config.clientId,
  refreshTokenDelivery: config.delivery,
  ...(tabStore === undefined ? {} : { tokenStore: tabStore }),
  apiOrigins: [config.apiUrl],
  // The key: non-extractable, in IndexedDB, shared by the tabs.
  dpop: config.dpop,
  refreshSkewMs: SKEW_MS,
  // A new tab waits this long for an open one to hand it the session before it asks the auth-service with its cookie.
  tabSyncTimeoutMs: 1000,
  fetch: countingFetch
})
// For the curious, in the developer tools: baton.signedIn, baton.expiresAt, await baton.sessions().
window.baton = baton

let access
let refreshTimer

async function loadAccessToken () {
  const token = await baton.accessToken()
  access = { token, claims: decodeClaims(token) }
  renderClaims()
  renderRefreshToken()
  scheduleRefresh()
}

/** Every tab asks for a fresh token at the same moment; the Web Lock lets one refresh, and the others are handed its result. */
function scheduleRefresh () {
  clearTimeout(refreshTimer)
  if (!baton.signedIn) return
  const due = baton.expiresAt - SKEW_MS + 20
  refreshTimer = setTimeout(() => {
    baton.accessToken().catch((error) => {
      if (error instanceof BatonClientError && (error.code === 'invalid_grant' || error.code === 'not_signed_in')) return
      log('warn', 'Refresh failed; trying again shortly', errorText(error))
      setTimeout(scheduleRefresh, 2000)
    })
  }, Math.max(0, due - Date.now()))
}

const END_REASONS = {
  logout: 'Logged out',
  logout_everywhere: 'Logged out everywhere',
  session_ended: 'This session was ended from the sessions list',
  invalid_grant: 'The auth-service refused the refresh token'
}

baton.on('signed-in', ({ fromOtherTab }) => {
  // A new session: count its refreshes from here (a cookie-mode tab's look for a session it did not have is not one).
  Object.assign(stats, { requests: 0, rotations: 0, handed: 0 })
  renderStats()
  log('ok', fromOtherTab ? 'Signed in by another tab' : 'Signed in', fromOtherTab ? 'The tab that logged in passed the session over the BroadcastChannel: no request from this tab.' : 'Password grant: an access token and a refresh token came back.')
  void enterSignedIn()
})

/** Who refreshed, by the new token's expiry: the refreshing tab says so on the demo's own channel, before or after the client's message arrives. */
const refreshers = new Map()
const pendingHandoffs = new Map()

baton.on('refreshed', ({ expiresAt, fromOtherTab }) => {
  stats.rotations++
  if (fromOtherTab) {
    stats.handed++
    const who = refreshers.get(expiresAt)
    const entry = log('handoff', `New access token handed over by ${who ?? 'another tab'}`, 'That tab refreshed; this one waited on the Web Lock and sent no request.')
    if (who === undefined) pendingHandoffs.set(expiresAt, entry)
  } else {
    presence.postMessage({ type: 'refreshed', tab: tabName, expiresAt })
    log('refresh', 'Refreshed by this tab', 'One POST /oauth/token: the refresh token was spent and a new pair came back (rotation).')
  }
  renderStats()
  void loadAccessToken().then(loadSessions)
})

baton.on('session-ended', ({ reason, description, fromOtherTab }) => {
  const reuse = /already used|reuse/i.test(description ?? '')
  const title = reuse ? 'Refresh token reuse detected: the session is revoked' : `${END_REASONS[reason] ?? 'Session ended'}${fromOtherTab ? ' (in another tab)' : ''}`
  log(reason === 'invalid_grant' ? 'danger' : 'info', title, description ?? (fromOtherTab ? 'Every tab signs out together.' : undefined))
  leaveSignedIn(reason === 'invalid_grant' ? `You were signed out. ${title}${description === undefined || reuse ? '' : `: ${description}`}.` : undefined)
})

// --- views -------------------------------------------------------------------

function showNotice (text, info = false) {
  const notice = $('notice')
  notice.hidden = text === undefined
  notice.textContent = text ?? ''
  notice.classList.toggle('notice-info', info)
}

async function enterSignedIn () {
  showNotice(undefined)
  $('view-signed-out').hidden = true
  $('view-signed-in').hidden = false
  $('topbar-logout').hidden = false
  try {
    await loadAccessToken()
    $('user-pill').hidden = false
    $('user-pill').textContent = access.claims.username ?? access.claims.sub
    await loadSessions()
  } catch (error) {
    if (!(error instanceof BatonClientError) || error.code !== 'not_signed_in') log('warn', 'Could not load the session', errorText(error))
  }
}

function leaveSignedIn (notice) {
  clearTimeout(refreshTimer)
  access = undefined
  $('view-signed-in').hidden = true
  $('view-signed-out').hidden = false
  $('user-pill').hidden = true
  $('topbar-logout').hidden = true
  showNotice(notice)
}

// --- rendering -----------------------------------------------------------------

const CLAIM_NOTES = {
  sub: 'the user',
  sid: 'the session: one chain of refresh tokens',
  scope: 'what the token may do',
  aud: 'the APIs it is for',
  iss: 'who signed it',
  client_id: 'the app that asked for it',
  cnf: 'the key it is bound to (DPoP): useless without it'
}

function renderClaims () {
  if (access === undefined) return
  const { claims } = access
  const rows = ['username', 'sub', 'scope', 'sid', 'cnf', 'client_id', 'aud', 'iss', 'iat', 'exp', 'jti']
    .filter((name) => claims[name] !== undefined)
    .map((name) => {
      let value = Array.isArray(claims[name]) ? claims[name].join(' ') : String(claims[name])
      if (name === 'cnf') value = `jkt ${claims.cnf.jkt}`
      if (name === 'iat' || name === 'exp') value = `${claims[name]} (${time(claims[name] * 1000)})`
      return el('tr', {}, el('th', {}, name), el('td', {}, value, CLAIM_NOTES[name] === undefined ? undefined : el('span', { class: 'claim-note' }, CLAIM_NOTES[name])))
    })
  $('claims').replaceChildren(...rows)
  $('access-preview').textContent = preview(access.token)
  void renderKey()
}

/** The DPoP key as the client reports it: its thumbprint (the token's cnf.jkt) and whether it can be read out. */
async function renderKey () {
  const bound = baton.tokenType === 'DPoP'
  $('dpop-key').hidden = !bound
  if (!bound) return
  const key = await baton.dpopKey()
  $('dpop-key-thumbprint').textContent = key.thumbprint
  $('dpop-key-extractable').textContent = key.extractable ? 'extractable' : 'non-extractable'
}

function renderRefreshToken () {
  const cookieMode = config.delivery === 'cookie'
  $('refresh-cookie').hidden = !cookieMode
  $('refresh-body').hidden = cookieMode
  $('refresh-badge').textContent = cookieMode ? 'HttpOnly cookie' : 'token mode'
  $('refresh-badge').className = `badge ${cookieMode ? 'badge-ok' : ''}`
  $('document-cookie').textContent = JSON.stringify(document.cookie)
  $('victim-cookie-value').textContent = JSON.stringify(document.cookie)
  if (tabStore !== undefined) $('refresh-value').textContent = preview(tabStore.get('refresh_token') ?? '')
}

function renderStats () {
  $('stat-rotations').textContent = String(stats.rotations)
  $('stat-requests').textContent = String(stats.requests)
  $('stat-handed').textContent = String(stats.handed)
}

function tick () {
  const expiresAt = baton.expiresAt
  if (expiresAt === undefined || access === undefined) return
  const lifetime = Math.max(1, (access.claims.exp - access.claims.iat) * 1000)
  const remaining = Math.max(0, expiresAt - Date.now())
  $('countdown-seconds').textContent = String(Math.ceil(remaining / 1000))
  $('ring-bar').style.strokeDashoffset = String(RING * (1 - remaining / lifetime))
  $('ring-bar').classList.toggle('is-low', remaining <= SKEW_MS)
  const dueIn = Math.ceil((remaining - SKEW_MS) / 1000)
  $('refresh-due').textContent = dueIn > 0 ? `Refresh in ${dueIn} s, ${SKEW_MS / 1000} s before expiry` : 'Refreshing…'
  renderPhoneClock()
}
setInterval(tick, 200)

// --- tabs ----------------------------------------------------------------------

const presence = new BroadcastChannel('baton-demo-tabs')
const tabs = new Set([tabName])

function renderTabs () {
  $('tab-pill').textContent = tabName
  $('tabs-count').textContent = `${tabs.size} open`
  $('tab-list').replaceChildren(...[...tabs].sort().map((name) => el('li', { class: name === tabName ? 'is-self' : '' }, name === tabName ? `${name} (this tab)` : name)))
}

presence.onmessage = ({ data }) => {
  if (data?.type === 'hello') {
    tabs.add(data.tab)
    presence.postMessage({ type: 'here', tab: tabName })
  } else if (data?.type === 'here') {
    tabs.add(data.tab)
  } else if (data?.type === 'bye') {
    tabs.delete(data.tab)
  } else if (data?.type === 'refreshed') {
    const pending = pendingHandoffs.get(data.expiresAt)
    if (pending !== undefined) {
      pending.setTitle(`New access token handed over by ${data.tab}`)
      pendingHandoffs.delete(data.expiresAt)
    } else {
      refreshers.set(data.expiresAt, data.tab)
    }
  }
  renderTabs()
}
presence.postMessage({ type: 'hello', tab: tabName })
addEventListener('pagehide', () => { presence.postMessage({ type: 'bye', tab: tabName }) })

// --- API -------------------------------------------------------------------------

async function callApi (path) {
  const result = $('api-result')
  result.hidden = false
  $('api-what').textContent = `GET ${path}`
  $('api-status').textContent = '…'
  $('api-status').className = 'status status-muted'
  $('api-body').textContent = ''
  try {
    const response = await baton.fetch(`${config.apiUrl}${path}`)
    const text = await response.text()
    let body = text
    try { body = JSON.stringify(JSON.parse(text), null, 2) } catch {}
    $('api-status').textContent = String(response.status)
    $('api-status').className = `status ${response.ok ? 'status-ok' : response.status === 403 ? 'status-warn' : 'status-bad'}`
    $('api-body').textContent = body
    log(response.ok ? 'ok' : 'warn', `GET ${path}: ${response.status}`, response.status === 403 ? 'The token lacks the scope this route needs.' : 'The API verified the access token with the public keys it holds.')
  } catch (error) {
    $('api-status').textContent = 'error'
    $('api-status').className = 'status status-bad'
    $('api-body').textContent = errorText(error)
  }
}

// --- sessions ------------------------------------------------------------------

function deviceName (userAgent) {
  const browser = /Edg\//.test(userAgent) ? 'Edge' : /(Headless)?Chrome\//.test(userAgent) ? 'Chrome' : /Firefox\//.test(userAgent) ? 'Firefox' : /Safari\//.test(userAgent) ? 'Safari' : /^curl\//.test(userAgent) ? 'curl' : 'Unknown client'
  const system = /Android/.test(userAgent) ? 'Android' : /iPhone|iPad/.test(userAgent) ? 'iOS' : /Mac OS X/.test(userAgent) ? 'macOS' : /Windows/.test(userAgent) ? 'Windows' : /Linux/.test(userAgent) ? 'Linux' : undefined
  return system === undefined ? browser : `${browser} on ${system}`
}

async function loadSessions () {
  if (!baton.signedIn) return
  let sessions
  try {
    sessions = await baton.sessions()
  } catch (error) {
    if (!(error instanceof BatonClientError) || !['not_signed_in', 'invalid_grant'].includes(error.code)) log('warn', 'Could not list the sessions', errorText(error))
    return
  }
  const phoneSession = phone?.sessionId
  const rows = sessions.map((session) => {
    const label = session.current ? 'this browser' : session.id === phoneSession ? 'phone app' : undefined
    return el('tr', { 'data-session': session.id },
      el('td', {}, el('span', { class: 'device-name' }, session.id === phoneSession ? 'Phone app (simulated)' : deviceName(session.userAgent)),
        label === undefined ? undefined : el('span', { class: 'current' }, label),
        el('span', { class: 'sid' }, session.id)),
      el('td', {}, el('code', {}, session.clientId)),
      el('td', {}, time(Date.parse(session.createdAt))),
      el('td', {}, time(Date.parse(session.lastUsedAt))),
      el('td', {}, el('button', {
        class: 'button button-small button-danger',
        type: 'button',
        onclick: (event) => { void busy(event.currentTarget, async () => await endSession(session.id, session.current)) }
      }, 'End')))
  })
  $('sessions').replaceChildren(...(rows.length > 0 ? rows : [el('tr', {}, el('td', { class: 'empty', colspan: '5' }, 'No live sessions.'))]))
}

async function endSession (id, current) {
  try {
    await baton.endSession(id)
    if (!current) log('info', 'Ended a session', `DELETE /sessions/${id.slice(0, 8)}…: its refresh token is dead, and the API refuses its access tokens at once (revocation feed).`)
    await loadSessions()
  } catch (error) {
    log('warn', 'Could not end the session', errorText(error))
  }
}

// --- the phone app and the thief ----------------------------------------------------

const phoneStore = new MemoryTokenStore()
let phone
let phoneTimer

function renderPhone (state, kind = 'muted') {
  $('phone-state').textContent = state
  $('phone-state').className = `status status-${kind}`
  const signedIn = phone?.signedIn === true
  $('phone-form').hidden = signedIn
  $('phone-signed-in').hidden = !signedIn
  $('steal-phone').disabled = !signedIn
  $('phone-token').textContent = preview(phoneStore.get('refresh_token') ?? '')
  renderPhoneClock()
}

function renderPhoneClock () {
  if (phone?.signedIn !== true) return
  const lifetime = access === undefined ? 20_000 : (access.claims.exp - access.claims.iat) * 1000
  const dueIn = Math.max(0, Math.ceil((phone.expiresAt - lifetime / 2 - Date.now()) / 1000))
  $('phone-next').textContent = dueIn > 0 ? `Refreshes in the background in ${dueIn} s` : 'Refreshing…'
}

function schedulePhoneRefresh () {
  clearTimeout(phoneTimer)
  if (phone?.signedIn !== true) return
  // The client refreshes at half the token's life at most; a phone app would keep its token fresh the same way.
  const lifetime = access === undefined ? 20_000 : (access.claims.exp - access.claims.iat) * 1000
  phoneTimer = setTimeout(() => { phone.accessToken().catch(() => {}) }, Math.max(0, phone.expiresAt - lifetime / 2 + 50 - Date.now()))
}

function makePhone () {
  const client = createClient({
    issuer: config.issuer,
    clientId: PHONE_CLIENT_ID,
    refreshTokenDelivery: 'body',
    // The phone's keystore, played by memory; in an app: iOS Keychain, Android Keystore.
    tokenStore: phoneStore,
    // Another device: it shares nothing with this page's tabs.
    crossTab: false,
    apiOrigins: [config.apiUrl],
    // Its own key, kept where the phone keeps it (a keystore, played by memory): never this browser's.
    dpop: config.dpop ? { keyStore: new MemoryKeyStore() } : false
  })
  client.on('signed-in', () => {
    log('ok', 'Phone app signed in', 'Token mode: the refresh token came in the answer, and the app keeps it in its keystore.', 'Phone')
    renderPhone('signed in', 'ok')
    schedulePhoneRefresh()
    void loadSessions()
  })
  client.on('refreshed', () => {
    log('refresh', 'Phone app refreshed', 'It spent its refresh token and stored the new one.', 'Phone')
    renderPhone('signed in', 'ok')
    schedulePhoneRefresh()
  })
  client.on('session-ended', ({ reason, description }) => {
    clearTimeout(phoneTimer)
    const reuse = /already used|reuse/i.test(description ?? '')
    // DPoP: the thief's refresh with another key (or none) was taken for theft at once.
    const theft = !reuse && (phoneRevokedByTheft || /bound to a DPoP key/i.test(description ?? ''))
    log('danger', reuse ? 'Phone app: refresh token reuse detected, session revoked' : theft ? 'Phone app: its session was revoked when the thief tried its token' : `Phone app signed out (${reason})`,
      reuse ? 'It presented a token someone else had already spent. The auth-service revoked the whole session: the phone\'s tokens and the thief\'s.'
        : theft ? 'The refresh token is bound to the phone\'s key; a request without a proof of that key is theft, and the auth-service ended the session. The thief got nothing.' : description, 'Phone')
    renderPhone(reuse || theft ? 'revoked' : 'signed out', 'bad')
    void loadSessions()
  })
  return client
}

async function signInPhone (event) {
  event.preventDefault()
  const password = $('phone-password').value
  const username = access?.claims.username
  if (password === '' || username === undefined) return
  phone?.close()
  phoneRevokedByTheft = false
  phone = makePhone()
  try {
    await busy(event.submitter ?? $('phone-form').querySelector('button'), async () => { await phone.login(username, password) })
    $('phone-password').value = ''
  } catch (error) {
    renderPhone(error instanceof BatonClientError && error.code === 'invalid_grant' ? 'wrong password' : 'error', 'bad')
  }
}

let stolenClientId = PHONE_CLIENT_ID
let stolenFromPhone = true
/** DPoP: the thief's refresh with the phone's token revoked the phone's session; the phone hears only "not valid" at its next refresh. */
let phoneRevokedByTheft = false
let thiefAccessToken

function steal (token, clientId, from) {
  if (token === undefined) return
  $('stolen').value = token
  stolenClientId = clientId
  stolenFromPhone = clientId === PHONE_CLIENT_ID && from.includes('phone')
  log('warn', `A copy of ${from} refresh token leaked to the thief`, 'A backup, a log line, malware: the token itself is all a thief needs.', 'Thief')
}

function thiefSays (status, text) {
  const kind = status === 200 ? 'ok' : status >= 500 ? 'warn' : 'bad'
  $('thief-log').prepend(el('li', {}, el('span', { class: `status status-${kind}` }, String(status)), el('span', {}, text)))
}

async function thief (path, body) {
  const response = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return await response.json()
}

async function thiefRefresh () {
  const token = $('stolen').value.trim()
  if (token === '') return
  // With DPoP the thief signs proofs too, with the only key it has: its own.
  const { status, body } = await thief('/thief/refresh', { refresh_token: token, client_id: stolenClientId, scheme: config.dpop ? 'DPoP' : 'Bearer' })
  if (status === 200) {
    const claims = decodeClaims(body.access_token)
    thiefAccessToken = body.access_token
    $('stolen').value = body.refresh_token ?? ''
    $('thief-me').disabled = false
    thiefSays(status, `In. A fresh access token for ${claims.username ?? claims.sub} and a new refresh token (now in the box). The owner's copy is spent.`)
    log('danger', 'The thief redeemed the stolen refresh token', 'From another computer (another user agent): the auth-service cannot tell yet who is who. The owner\'s next refresh will.', 'Thief')
  } else {
    thiefSays(status, `${body.error ?? 'error'}: ${body.error_description ?? ''}`)
    if (stolenFromPhone && /bound to a DPoP key/i.test(body.error_description ?? '')) phoneRevokedByTheft = true
    log(status === 400 ? 'ok' : 'warn', `The thief's refresh was refused: ${body.error ?? status}`,
      config.dpop ? 'The refresh token is bound to its owner\'s key (DPoP), and the thief\'s proof is signed with another.' : body.error_description, 'Thief')
  }
}

function stealAccessToken () {
  if (access === undefined) return
  thiefAccessToken = access.token
  $('thief-me').disabled = false
  log('warn', 'A copy of this tab\'s access token leaked to the thief', 'A log line, a proxy, a browser extension: the token itself is all a thief needs, unless it is bound to a key.', 'Thief')
}

async function thiefCallsApi () {
  if (thiefAccessToken === undefined) return
  const bound = decodeClaims(thiefAccessToken).cnf !== undefined
  // A bound token: the thief tries it as a bearer token, then with a proof of its own key.
  for (const scheme of bound ? ['Bearer', 'DPoP'] : ['Bearer']) await thiefUsesAccessToken(scheme, bound)
}

async function thiefUsesAccessToken (scheme, bound) {
  const { status, body } = await thief('/thief/me', { access_token: thiefAccessToken, scheme })
  if (bound && status !== 200) {
    thiefSays(status, `${body.error ?? 'error'} (as ${scheme}${scheme === 'DPoP' ? ', the thief\'s key' : ''}): ${body.error_description ?? ''}`)
    log('ok', `The API refuses the thief's stolen access token sent as ${scheme}: ${status}`,
      scheme === 'Bearer' ? 'A DPoP-bound token is never taken as a bearer token.' : 'The proof is signed with the thief\'s key, not the one the token names (cnf.jkt).', 'Thief')
    return
  }
  if (status === 200) {
    thiefSays(status, `GET /me answers as ${body.username ?? body.sub}: the API cannot tell the thief from the owner.`)
    log('danger', `The API served the thief as ${body.username ?? body.sub}`, 'A valid access token is all the API asks for; until the session is revoked, the thief is in.', 'Thief')
  } else {
    thiefSays(status, `${body.error ?? 'error'}: ${body.error_description ?? ''}`)
    log('ok', `The API refuses the thief's access token: ${status}`, 'Its session was revoked; the resource-service heard it on the revocation feed.', 'Thief')
  }
}

// --- forms and buttons -------------------------------------------------------------

let formMode = 'login'

function setFormMode (mode) {
  formMode = mode
  $('tab-login').classList.toggle('is-active', mode === 'login')
  $('tab-register').classList.toggle('is-active', mode === 'register')
  $('tab-login').setAttribute('aria-selected', String(mode === 'login'))
  $('tab-register').setAttribute('aria-selected', String(mode === 'register'))
  $('auth-submit').textContent = mode === 'login' ? 'Log in' : 'Create account and log in'
  $('password').autocomplete = mode === 'login' ? 'current-password' : 'new-password'
  $('auth-error').hidden = true
}

async function register (username, password) {
  const response = await fetch(`${config.issuer}/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ username, password })
  })
  if (response.status === 201) {
    log('ok', `Account ${username} created`, 'POST /users: the password is stored as an argon2id hash.')
    return
  }
  const body = await response.json().catch(() => ({}))
  throw new Error(body.error_description ?? `registration failed (${response.status})`)
}

$('tab-login').addEventListener('click', () => { setFormMode('login') })
$('tab-register').addEventListener('click', () => { setFormMode('register') })
$('auth-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const username = $('username').value.trim()
  const password = $('password').value
  $('auth-error').hidden = true
  void busy($('auth-submit'), async () => {
    try {
      if (formMode === 'register') await register(username, password)
      await baton.login(username, password)
      $('password').value = ''
    } catch (error) {
      $('auth-error').textContent = errorText(error)
      $('auth-error').hidden = false
    }
  })
})

async function logout (button, everywhere) {
  await busy(button, async () => {
    try {
      if (everywhere) await baton.logoutEverywhere()
      else await baton.logout()
    } catch (error) {
      log('warn', everywhere ? 'Log out everywhere failed' : 'The auth-service could not be told; signed out here anyway', errorText(error))
    }
  })
}

$('topbar-logout').addEventListener('click', (event) => { void logout(event.currentTarget, false) })
$('logout').addEventListener('click', (event) => { void logout(event.currentTarget, false) })
$('logout-everywhere').addEventListener('click', (event) => { void logout(event.currentTarget, true) })
$('call-me').addEventListener('click', (event) => { void busy(event.currentTarget, async () => { await callApi('/me') }) })
$('call-reports').addEventListener('click', (event) => { void busy(event.currentTarget, async () => { await callApi('/reports') }) })
$('sessions-reload').addEventListener('click', (event) => { void busy(event.currentTarget, loadSessions) })
$('open-tab').addEventListener('click', () => { window.open(location.href, '_blank') })
$('clear-log').addEventListener('click', clearLog)
$('phone-form').addEventListener('submit', (event) => { void signInPhone(event) })
$('steal-phone').addEventListener('click', () => { steal(phoneStore.get('refresh_token'), PHONE_CLIENT_ID, 'the phone app\'s') })
$('steal-tab').addEventListener('click', () => { steal(tabStore?.get('refresh_token'), config.clientId, 'this tab\'s') })
$('thief-refresh').addEventListener('click', (event) => { void busy(event.currentTarget, thiefRefresh) })
$('thief-me').addEventListener('click', (event) => { void busy(event.currentTarget, thiefCallsApi) })
$('steal-access').addEventListener('click', stealAccessToken)

// --- start ------------------------------------------------------------------------

const cookieMode = config.delivery === 'cookie'
$('mode-pill').textContent = cookieMode ? 'Cookie mode' : 'Token mode'
$('dpop-pill').textContent = config.dpop ? 'DPoP' : 'Bearer tokens'
if (config.dpop) $('api-authorization').textContent = 'Authorization: DPoP …, DPoP: <proof>'
$('dpop-pill').className = `pill ${config.dpop ? 'pill-user' : 'pill-muted'}`
$('api-origin').textContent = config.apiUrl
$('footer-issuer').textContent = config.issuer
$('footer-api').textContent = config.apiUrl
$('victim-cookie').hidden = !cookieMode
$('victim-body').hidden = cookieMode
$('steal-tab').hidden = cookieMode
$('thief-dpop').hidden = !config.dpop
clearLog()
renderTabs()
renderStats()
renderPhone('signed out')

// Another tab may hold the session (it answers over the BroadcastChannel), or in cookie mode the browser's cookie does.
try {
  if (!await baton.restore()) leaveSignedIn()
  else if ($('view-signed-in').hidden) await enterSignedIn()
} catch (error) {
  leaveSignedIn()
  if (!(error instanceof BatonClientError) || error.code === 'network_error') showNotice(errorText(error))
}
document.documentElement.dataset.ready = 'true'
