import t from 'tap'
import { startRedisCluster } from '@baton/test-redis'
import { startAuth, startResource, eventually } from './feed-helper.js'

// The feed's stream lives in one slot and the users' keys in others: both
// services reach the cluster through the same client factory.
t.test('on a Redis Cluster: each kind of revocation reaches the verifier', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(async () => { await cluster.stop() })
  const env = { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_KEY_PREFIX: 'feed-cluster:' }
  const auth = await startAuth(t, env)
  // The cluster client learns the slot map after start-up; wait as a load balancer would.
  t.ok(await eventually(async () => (await fetch(`${auth.url}/readyz`)).ok, 15_000), 'the auth-service is ready on the cluster')
  const api = await startResource(t, auth, env)
  await api.ready()

  for (const name of ['ada', 'grace']) await auth.register(name)
  const [loggedOut, revoked, everywhere, bystander] = [await auth.login('ada'), await auth.login('ada'), await auth.login('grace'), await auth.login('ada')]
  for (const tokens of [loggedOut, revoked, everywhere, bystander]) t.equal((await api.me(tokens.access_token)).status, 200, 'valid before')

  t.equal((await auth.post('/oauth/revoke', { token: loggedOut.refresh_token })).status, 200)
  t.ok(await eventually(async () => (await api.me(loggedOut.access_token)).status === 401), 'logout: the session\'s access token is refused')
  t.equal((await auth.post('/oauth/revoke', { token: revoked.access_token })).status, 200)
  t.ok(await eventually(async () => (await api.me(revoked.access_token)).status === 401), 'an access token revoked by itself is refused')
  t.equal((await auth.send('DELETE', '/sessions', everywhere.access_token)).status, 204)
  t.ok(await eventually(async () => (await api.me(everywhere.access_token)).status === 401), 'log out everywhere: refused')

  const challenge = (await api.me(loggedOut.access_token)).challenge ?? ''
  t.match(challenge, /error="invalid_token"/)
  t.equal((await api.me(bystander.access_token)).status, 200, 'another session of the same user is untouched')
})
