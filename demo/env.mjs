// What `pnpm demo` (scripts/start.mjs --demo) sets for the services and the
// page, unless the environment already says otherwise.
//
// The page, the auth-service and the resource-service are three origins of
// one site: http://localhost on three ports. Different origins, so the
// services answer the page through CORS, as they would answer a web app on
// its own domain; one site, so a SameSite=Strict cookie set by the
// auth-service comes back with the page's requests to it. `localhost` and
// `127.0.0.1` are different sites to a browser: every URL here says
// localhost.

const COOKIE_CLIENT_ID = 'baton-demo'

/**
 * @param {Record<string, string | undefined>} env
 * @param {{ authPort: number, resourcePort: number, demoPort: number }} ports
 * @returns {Record<string, string>} the variables to set
 */
export function demoEnvironment (env, { authPort, resourcePort, demoPort }) {
  const page = `http://localhost:${demoPort}`
  // Cookie mode, the safe default for browsers; `body` shows token mode, with the built-in client.
  const delivery = env.DEMO_REFRESH_TOKEN_DELIVERY === 'body' ? 'body' : 'cookie'
  // DPoP on: the page's tokens (and the phone's) are bound to a key that never leaves the browser; `off` shows bearer tokens.
  const dpop = env.DEMO_DPOP === 'off' ? 'off' : 'on'
  const defaults = {
    DEMO_URL: page,
    ISSUER: `http://localhost:${authPort}`,
    DEMO_API_URL: `http://localhost:${resourcePort}`,
    // Short enough to watch the token count down and be refreshed; 10 s is the least the auth-service takes.
    ACCESS_TOKEN_TTL: '20',
    DEFAULT_SCOPES: 'profile reports:read',
    CORS_ORIGINS: page,
    // The demo's accounts and sessions stay apart from those of `pnpm start` when both use the same Redis.
    REDIS_KEY_PREFIX: 'baton-demo:',
    // Trying the page out means registering a few accounts.
    RATE_LIMIT_REGISTRATIONS: '100',
    DEMO_REFRESH_TOKEN_DELIVERY: delivery,
    DEMO_DPOP: dpop,
    DEMO_CLIENT_ID: delivery === 'cookie' ? COOKIE_CLIENT_ID : 'baton',
    // The page's own client, in cookie mode (and, with DPoP, refused any token without a proof); the built-in client `baton` (token mode) stays, for the phone app the page plays.
    CLIENTS: JSON.stringify([{
      client_id: COOKIE_CLIENT_ID, grant_types: ['password', 'refresh_token'], refresh_token_delivery: 'cookie', ...(dpop === 'on' ? { dpop_bound_access_tokens: true } : {})
    }])
  }
  return Object.fromEntries(Object.entries(defaults).filter(([name]) => (env[name] ?? '') === ''))
}
